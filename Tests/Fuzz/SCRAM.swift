// Fuzz target for the SASL mechanisms' handling of server messages: SCRAM-SHA-1/256 server-first and server-final
// (RFC 5802), and the challenges CRAM-MD5, LOGIN, PLAIN, XOAUTH2 and OAUTHBEARER answer. Built and run by
// `scripts/fuzz SCRAM`.
//
// Input: one byte of set-up (bit 0: SHA-256; bit 1: no initial response, so the first challenge is empty), then the
// server-first message, a NUL byte, and the server-final message. Iteration counts from 33 up to the mechanism's
// limit are skipped: PBKDF2 would spend the run's time hashing (the limit itself has unit tests). A client that
// accepts a server-final must have verified the server's signature, and SCRAM answers no fourth message.
import SASL

/// The largest iteration count run through PBKDF2 here.
let iterationCap = 32

/// The `i=` attribute as `SCRAMMechanism` reads it: comma-separated `k=v` pairs of characters, the last one wins.
func iterations(in serverFirst: [UInt8]) -> Int? {
    var value: Int?
    for part in String(decoding: serverFirst, as: UTF8.self).split(separator: ",") {
        if part.first == "i", part.dropFirst().first == "=" { value = Int(part.dropFirst(2)) }
    }
    return value
}

func fuzzSCRAM(setup: UInt8, serverFirst: [UInt8], serverFinal: [UInt8]) {
    if let n = iterations(in: serverFirst), n > iterationCap, n <= SCRAMMechanism.maximumIterations { return }
    var scram = SCRAMMechanism(
        hash: setup & 1 == 0 ? .sha1 : .sha256, user: "user", password: "pencil", nonce: "fyko+d2lbbFgONRv9qkxdawL")
    if setup & 2 == 0 {
        _ = scram.initialResponse()
    } else {
        guard let first = try? scram.respond(to: []) else { fatalError("empty first challenge refused") }
        require(String(decoding: first, as: UTF8.self) == "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL")
    }
    guard let clientFinal = try? scram.respond(to: serverFirst) else {
        require((try? scram.verifyCompletion()) == nil, "verified without a server-first")
        return
    }
    let text = String(decoding: clientFinal, as: UTF8.self)
    require(text.hasPrefix("c=biws,r=fyko+d2lbbFgONRv9qkxdawL") && text.contains(",p="), "client-final \(text)")
    let verified = (try? scram.respond(to: serverFinal)) != nil
    require(verified == ((try? scram.verifyCompletion()) != nil), "verification and completion disagree")
    require((try? scram.respond(to: serverFinal)) == nil, "a fourth message was answered")
}

func fuzzOthers(_ challenge: [UInt8]) {
    let cram = CramMD5Mechanism(user: "user", password: "secret")
    if let answer = try? cram.respond(to: challenge) {
        require(String(decoding: answer, as: UTF8.self).hasPrefix("user "), "CRAM-MD5 answer")
        require(answer.count == "user ".count + 32, "CRAM-MD5 digest length")
    }
    var login = LoginMechanism(user: "user", password: "secret")
    _ = try? login.respond(to: challenge)
    _ = try? login.respond(to: challenge)
    let plain = PlainMechanism(user: "user", password: "secret")
    _ = try? plain.respond(to: challenge)
    let xoauth = XOAuth2Mechanism(user: "user", token: "token")
    _ = try? xoauth.respond(to: challenge)
    let bearer = OAuthBearerMechanism(user: "user", token: "token")
    _ = try? bearer.respond(to: challenge)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSASL(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard count >= 1 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data, count: count))
    let messages = input.dropFirst()
    let nul = messages.firstIndex(of: 0) ?? messages.endIndex
    let serverFirst = Array(messages[..<nul])
    let serverFinal = nul < messages.endIndex ? Array(messages[(nul + 1)...]) : []
    fuzzSCRAM(setup: input[0], serverFirst: serverFirst, serverFinal: serverFinal)
    fuzzOthers(Array(messages))
    return 0
}

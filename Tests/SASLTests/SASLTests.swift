import Testing

@testable import SASL

@Suite("SASL mechanisms, with the RFCs' test vectors")
struct SASLTests {
    @Test("RFC 2195 CRAM-MD5 example")
    func cramMD5() throws {
        let m = CramMD5Mechanism(user: "tim", password: "tanstaaftanstaaf")
        let r = try m.respond(to: Array("<1896.697170952@postoffice.reston.mci.net>".utf8))
        #expect(String(decoding: r, as: UTF8.self) == "tim b913a602c7eda7a495b4e6e7334d3890")
    }

    @Test("RFC 5802 §5 SCRAM-SHA-1 example, server signature verified")
    func scramSHA1() throws {
        var m = SCRAMMechanism(hash: .sha1, user: "user", password: "pencil", nonce: "fyko+d2lbbFgONRv9qkxdawL")
        let first = m.initialResponse() ?? []
        #expect(String(decoding: first, as: UTF8.self) == "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL")
        let final = try m.respond(
            to: Array("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096".utf8))
        #expect(
            String(decoding: final, as: UTF8.self)
                == "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=")
        _ = try m.respond(to: Array("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=".utf8))
        try m.verifyCompletion()
    }

    @Test("RFC 7677 §3 SCRAM-SHA-256 example")
    func scramSHA256() throws {
        var m = SCRAMMechanism(hash: .sha256, user: "user", password: "pencil", nonce: "rOprNGfwEbeRWgbNEkqO")
        _ = m.initialResponse()
        let final = try m.respond(
            to: Array("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".utf8))
        #expect(
            String(decoding: final, as: UTF8.self)
                == "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        )
        _ = try m.respond(to: Array("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".utf8))
        try m.verifyCompletion()
    }

    @Test("SCRAM refuses a forged server signature, a nonce that does not extend ours, and huge iteration counts")
    func scramRefusals() throws {
        var m = SCRAMMechanism(hash: .sha1, user: "user", password: "pencil", nonce: "fyko+d2lbbFgONRv9qkxdawL")
        _ = m.initialResponse()
        _ = try m.respond(to: Array("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096".utf8))
        #expect(throws: SASLError.self) { try m.respond(to: Array("v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=".utf8)) }
        #expect(throws: SASLError.self) { try m.verifyCompletion() }

        var n = SCRAMMechanism(hash: .sha256, user: "u", password: "p", nonce: "abc")
        _ = n.initialResponse()
        #expect(throws: SASLError.self) { try n.respond(to: Array("r=xyz123,s=QSXCR+Q6sek8bf92,i=4096".utf8)) }
        var o = SCRAMMechanism(hash: .sha256, user: "u", password: "p", nonce: "abc")
        _ = o.initialResponse()
        #expect(throws: SASLError.self) { try o.respond(to: Array("r=abcdef,s=QSXCR+Q6sek8bf92,i=99999999".utf8)) }
    }

    @Test("PLAIN, LOGIN, XOAUTH2, OAUTHBEARER, EXTERNAL encodings")
    func simpleMechanisms() throws {
        #expect(PlainMechanism(user: "tim", password: "tanstaaf").initialResponse() == Array("\0tim\0tanstaaf".utf8))
        var login = LoginMechanism(user: "tim", password: "pw")
        #expect(try login.respond(to: Array("Username:".utf8)) == Array("tim".utf8))
        #expect(try login.respond(to: Array("Password:".utf8)) == Array("pw".utf8))
        #expect(
            XOAuth2Mechanism(user: "a@b", token: "t0k").initialResponse()
                == Array("user=a@b\u{1}auth=Bearer t0k\u{1}\u{1}".utf8))
        #expect(
            OAuthBearerMechanism(user: "a,b", token: "t").initialResponse()
                == Array("n,a=a=2Cb,\u{1}auth=Bearer t\u{1}\u{1}".utf8))
        #expect(ExternalMechanism().initialResponse() == [])
    }

    @Test("base64 round trip")
    func base64() {
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            let e = Base64.encode(Array(s.utf8))
            #expect(Base64.decode(e) == Array(s.utf8))
        }
        #expect(Base64.encode(Array("foobar".utf8)) == "Zm9vYmFy")
    }
}

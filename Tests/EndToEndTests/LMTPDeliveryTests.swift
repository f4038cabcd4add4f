import Foundation
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// LMTP delivery into a real Dovecot LMTP server (the same private Dovecot that serves POP3).
@Suite("LMTP delivery through Dovecot")
struct LMTPDeliveryTests {
    /// Messages in a user's Maildir with Dovecot's added headers and popfetch's trace header removed.
    static func delivered(_ user: MailUser) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        for sub in ["new", "cur"] {
            let dir = user.maildir + "/" + sub
            for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
                let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name)))
                out.append(try Self.stripUpToTrace(bytes))
            }
        }
        return out
    }

    /// Drops the header lines the LMTP server put on top (Return-Path, Delivered-To, Received), then popfetch's.
    static func stripUpToTrace(_ bytes: [UInt8]) throws -> [UInt8] {
        let head = String(decoding: bytes.prefix(4096), as: UTF8.self)
        guard let marker = head.range(of: "with POP3 (popfetch"),
            let start = head[..<marker.lowerBound].range(of: "Received: from ", options: .backwards)
        else { throw TestFailure("no popfetch trace header") }
        let offset = head.utf8.distance(from: head.startIndex, to: start.lowerBound)
        return try PopfetchFixture.stripTraceHeader(Array(bytes[offset...]))
    }

    @Test("every message arrives byte-exact through Dovecot LMTP; a second poll sends nothing")
    func byteExact() throws {
        let f = try PopfetchFixture()
        let target = try f.server.addUser()
        try f.writeConfig(
            extra: "lmtp = \"127.0.0.1:\(f.server.lmtpPort)\"\nrecipient = \"\(target.name)\"", mda: "")
        // Bare CRs are normalized to line ends for SMTP/LMTP (RFC 5321 §2.3.8), so this corpus has none.
        let corpus = (0..<15).map { Corpus.message($0, seed: 120, bareCR: false) }
        try f.user.deliver(corpus)
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        let got = try Self.delivered(target)
        let same = sameMessages(got, corpus)
        #expect(same, "messages delivered through LMTP differ from the originals")
        #expect(f.user.messageCount() == 0)
        #expect(try f.poll().status == 0)
        #expect(try Self.delivered(target).count == corpus.count)
    }

    @Test("LMTP over a unix socket (Dovecot's own lmtp socket)")
    func unixSocket() throws {
        let f = try PopfetchFixture()
        let target = try f.server.addUser()
        let socket = f.server.directory + "/run/base/lmtp"
        try f.writeConfig(extra: "lmtp = \"\(socket)\"\nrecipient = \"\(target.name)\"", mda: "")
        let corpus = (0..<3).map { Corpus.message($0, seed: 122, bareCR: false) }
        try f.user.deliver(corpus)
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        let same = sameMessages(try Self.delivered(target), corpus)
        #expect(same)
    }

    @Test(
        "a real per-recipient failure (Dovecot quota): the recipient with room gets it once; the message is kept",
        .fault(
            .smtp, "one of two LMTP recipients over quota (Dovecot)",
            expect: "quota error shown; the other recipient gets it once, not again next poll; message kept"))
    func quotaPartialFailure() throws {
        let f = try PopfetchFixture()
        let roomy = try f.server.addUser()
        // scripts/dovecot-instance creates "quotafull" with a 1 KB quota when it starts.
        let full = MailUser(
            name: "quotafull", password: "secret-quotafull", maildir: f.server.mailDirectory + "/quotafull")
        try f.writeConfig(
            extra: "lmtp = \"127.0.0.1:\(f.server.lmtpPort)\"\nrecipient = [\"\(roomy.name)\", \"\(full.name)\"]",
            mda: "")
        var m = Corpus.message(1, seed: 121)
        m += Array(repeating: UInt8(ascii: "Q"), count: 4000) + [10]
        try f.user.deliver([m])
        let r = try f.poll()
        #expect(r.stderr.contains("Quota exceeded") || r.stderr.contains("552"), "\(r.stderr)")
        #expect(try Self.delivered(roomy).count == 1)
        #expect(try Self.delivered(full).isEmpty)
        #expect(f.user.messageCount() == 1, "kept on the server: a recipient lacks it")
        // The next poll skips it (marked failed) and the roomy recipient is not sent it again.
        _ = try f.poll()
        #expect(try Self.delivered(roomy).count == 1)
    }
}

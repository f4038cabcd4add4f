import Foundation
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension SMTPSecurityTests {
    @Test(
        "a wrong relay password is tried twice per poll (SCRAM-SHA-256, then PLAIN), not once per message",
        .fault(
            .smtp, "wrong relay password, 2 messages waiting",
            expect: "exit 75; both kept; Postfix logs exactly 2 failed AUTHs: SCRAM-SHA-256, then PLAIN"))
    func wrongRelayPasswordTriedTwice() throws {
        let postfix = try PostfixServer.get()
        let f = try PopfetchFixture()
        let relayUser = try f.server.addUser()
        let rcpt = postfix.newRecipient()
        try self.config(
            f, postfix, rcpt: rcpt,
            """
            smtp_tls = "starttls"
            smtp_ca_file = "\(postfix.caFile)"
            smtp_user = "\(relayUser.name)"
            smtp_password = "not-the-relay-password"
            """)
        try f.user.deliver([Corpus.message(1, seed: 153, bareCR: false), Corpus.message(2, seed: 153, bareCR: false)])
        let r = try f.poll()
        #expect(r.status == 75, "\(r.stderr)")
        #expect(f.user.messageCount() == 2)
        func failures() -> [String] {
            postfix.log.split(separator: "\n").map(String.init).filter {
                $0.contains("authentication failed") && $0.hasSuffix("sasl_username=\(relayUser.name)")
            }
        }
        #expect(eventually(10) { failures().count >= 2 })
        sleep(1)
        let seen = failures()
        #expect(seen.count == 2, "\(seen)")
        #expect(seen.first?.contains("SASL SCRAM-SHA-256 authentication failed") == true, "\(seen)")
        #expect(seen.last?.contains("SASL PLAIN authentication failed") == true, "\(seen)")
    }
}

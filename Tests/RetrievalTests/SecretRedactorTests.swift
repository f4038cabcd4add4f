import Delivery
import Foundation
import POP3Core
import Testing

@testable import Retrieval
@testable import Spool

/// The secrets of a login, masked wherever a server's text goes on (it may quote them back).
@Suite("Secret redactor")
struct SecretRedactorTests {
    @Test(
        "masks a password as sent, in base64, in an AUTH PLAIN payload, escaped for a terminal and as quoted",
        arguments: ["Hunter2Secret", "Se\"cr\\et99", "tab\there1", "Sécret-ü99"])
    func forms(password: String) {
        let r = SecretRedactor.login(user: "me", password: password)
        let plain = Data("\u{0}me\u{0}\(password)".utf8).base64EncodedString()
        let excerpt = String.excerpt(of: password.utf8, limit: Int.max)
        let quoted = String(excerpt.debugDescription.dropFirst().dropLast())
        for text in [
            "-ERR you sent \(password)", "-ERR \(Data(password.utf8).base64EncodedString())", "-ERR got \(plain)",
            "malformed reply \("HUH \(excerpt)".debugDescription)", "line: \(quoted)",
        ] {
            let masked = r.apply(text)
            #expect(masked.contains(SecretRedactor.mask), "\(text) -> \(masked)")
            #expect(!masked.contains(password) && !masked.contains(quoted) || quoted.count < 4, "\(masked)")
        }
    }

    @Test("a password shorter than 4 characters is left alone: masking every occurrence would garble the text")
    func short() {
        #expect(SecretRedactor.login(user: "me", password: "ab").apply("-ERR about ab") == "-ERR about ab")
    }

    /// A deliverer whose every answer quotes the relay password.
    struct Quoting: Deliverer {
        func recipientGroups(_ recipients: [String]) -> [[String]] { [recipients] }
        func deliver(_ message: SpooledMessage, to recipients: [String]) async throws -> [RecipientOutcome] {
            [RecipientOutcome(recipients: recipients, result: .permanentFailure("535 bad credentials SmtpSecret99"))]
        }
        func unavailability() async -> String? { "refused AUTH for SmtpSecret99" }
    }

    @Test("the relay password in an MTA's answer is masked in the delivery's outcome and its reason to stop")
    func deliverer() async throws {
        let d = RedactingDeliverer(
            inner: Quoting(), redactor: SecretRedactor.login(user: "u", password: "SmtpSecret99"))
        let spool = try SpoolFile(directory: nil, inMemory: true)
        try spool.begin(traceHeader: [])
        let outcomes = try await d.deliver(try spool.finish(), to: ["a@x"])
        #expect(
            outcomes == [
                RecipientOutcome(recipients: ["a@x"], result: .permanentFailure("535 bad credentials ********"))
            ])
        #expect(await d.unavailability() == "refused AUTH for ********")
    }
}

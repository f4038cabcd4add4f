import SMTPCore
import Testing

@testable import Delivery

/// The pure SMTP AUTH decisions: which SASL mechanism, and what a refusal means.
@Suite("SMTPAuthPlan: the SMTP AUTH mechanism and the fallback decision")
struct SMTPAuthPlanTests {
    typealias Mechanism = SMTPAuthPlan.Mechanism

    static func reply(_ code: Int) -> SMTPReply { SMTPReply(code: code, lines: ["5.7.8 Error: authentication failed"]) }

    @Test(
        "the strongest offered first, whatever the case; mechanisms popfetch has no password use for are left out",
        arguments: [
            (["PLAIN", "LOGIN"], [Mechanism.plain, .login]),
            (
                ["login", "plain", "cram-md5", "SCRAM-SHA-256", "SCRAM-SHA-1", "GSSAPI", "XOAUTH2"],
                [.scramSHA256, .scramSHA1, .cramMD5, .plain, .login]
            ),
            (["LOGIN", "CRAM-MD5"], [.cramMD5, .login]),
            (["GSSAPI", "NTLM"], []),
            ([], []),
        ])
    func candidates(offered: [String], expected: [Mechanism]) {
        #expect(SMTPAuthPlan().candidates(offered: offered) == expected)
    }

    @Test(
        "a refused SCRAM moves on to PLAIN, past the other challenge-response mechanisms; a refused PLAIN ends AUTH for the poll"
    )
    func challengeResponseThenPlain() {
        var plan = SMTPAuthPlan()
        let offered = ["SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN"]
        let first = plan.refusal(
            of: .scramSHA256, reply: Self.reply(535), candidates: plan.candidates(offered: offered), description: "one")
        #expect(first.tryNextMechanism)
        #expect(plan.failure == nil)
        #expect(plan.candidates(offered: offered) == [.plain, .login])
        let second = plan.refusal(
            of: .plain, reply: Self.reply(535), candidates: plan.candidates(offered: offered), description: "two")
        #expect(!second.tryNextMechanism)
        #expect(plan.failure == "two", "later messages are deferred without another attempt")
    }

    @Test(
        "no fallback after a 4yz (the server's trouble), a 538 (encryption wanted), or when only challenge-response is offered",
        arguments: [
            (454, ["SCRAM-SHA-256", "PLAIN"]), (538, ["CRAM-MD5", "PLAIN"]), (535, ["SCRAM-SHA-256", "CRAM-MD5"]),
        ])
    func noFallback(code: Int, offered: [String]) throws {
        var plan = SMTPAuthPlan()
        let candidates = plan.candidates(offered: offered)
        let first = try #require(candidates.first)
        let refusal = plan.refusal(of: first, reply: Self.reply(code), candidates: candidates, description: "refused")
        #expect(!refusal.tryNextMechanism)
        #expect(plan.failure == "refused")
    }
}

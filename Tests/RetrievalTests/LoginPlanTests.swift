import POP3Core
import Testing

@testable import Configuration
@testable import Retrieval

/// The pure login decisions: the order `auth = "auto"` tries mechanisms in, and when a refusal ends the login.
@Suite("LoginPlan: auth = auto candidates and the fallback decision")
struct LoginPlanTests {
    struct CandidateCase: Sendable, CustomTestStringConvertible {
        var name: String
        var offered: Set<String>
        var token = false
        var apop = false
        var encrypted = false
        var certificate = false
        var expected: [AuthMethod]
        var testDescription: String { self.name }
    }

    static let candidateCases: [CandidateCase] = [
        .init(name: "no CAPA: USER/PASS", offered: [], expected: [.user]),
        .init(
            name: "Dovecot", offered: ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"],
            expected: [.scramSHA256, .scramSHA1, .cramMD5, .plain, .login, .user]),
        .init(name: "Courier: CRAM-MD5 then USER", offered: ["CRAM-MD5"], expected: [.cramMD5, .user]),
        .init(name: "solid-pop3d: APOP then USER", offered: [], apop: true, expected: [.apop, .user]),
        .init(
            name: "APOP after the clear-text ones under TLS", offered: ["PLAIN"], apop: true, encrypted: true,
            expected: [.plain, .user, .apop]),
        .init(
            name: "token: only the OAuth mechanisms", offered: ["OAUTHBEARER", "XOAUTH2", "PLAIN"], token: true,
            expected: [.oauthbearer, .xoauth2]),
        .init(
            name: "token without OAuth offered: the password mechanisms", offered: ["PLAIN"], token: true,
            expected: [.plain, .user]),
        .init(
            name: "client certificate over TLS: EXTERNAL first", offered: ["EXTERNAL", "PLAIN"], encrypted: true,
            certificate: true, expected: [.external, .plain, .user]),
        .init(name: "EXTERNAL not without TLS", offered: ["EXTERNAL"], certificate: true, expected: [.user]),
    ]

    @Test("candidates are the offered mechanisms, strongest first, USER/PASS last", arguments: candidateCases)
    func candidates(_ c: CandidateCase) {
        let got = LoginPlan.candidates(
            offered: c.offered, hasToken: c.token, apopTimestamp: c.apop, encrypted: c.encrypted,
            clientCertificate: c.certificate)
        #expect(got == c.expected)
    }

    static func err(_ code: ResponseCode?, _ text: String = "no") -> StatusLine {
        StatusLine(indicator: .err, code: code, text: text)
    }

    @Test(
        "after a refusal: only no response code with more to try goes on; [AUTH] stops at once",
        arguments: [
            (err(nil), true, LoginPlan.Next.tryNextMechanism),
            (err(nil), false, .stop(.auth)),
            (err(.auth), true, .stop(.auth)),
            (err(.auth), false, .stop(.auth)),
            (err(.sysTemp), true, .stop(.temporary)),
            (err(.sysPerm, "mailbox is damaged"), true, .stop(.protocolError)),
            (err(.inUse), true, .stop(.mailboxInUse)),
            (err(.loginDelay), true, .stop(.loginDelay)),
            (err(.other("UTF8")), true, .stop(.protocolError)),
        ] as [(StatusLine, Bool, LoginPlan.Next)])
    func next(status: StatusLine, more: Bool, expected: LoginPlan.Next) {
        #expect(LoginPlan.next(after: status, moreToTry: more) == expected)
    }
}

import Configuration
import POP3Core

/// The pure decisions of a POP3 login: which mechanisms `auth = "auto"` tries, in which order, and what a refusal
/// means.
///
/// A server may offer a mechanism it cannot complete for this user (Courier offers CRAM-MD5 with a backend that
/// stores only hashes; solid-pop3d sends an APOP timestamp to users without an APOP secret), so `auto` tries the
/// next offered mechanism after a refusal without a response code. An RFC 3206 `[AUTH]` code says the credentials
/// themselves are wrong: then it stops, so a wrong password is never tried several times. Any other response code
/// is the server's problem, not the credentials', and ends the login in the server's words.
enum LoginPlan {
    /// The mechanisms `auto` tries, strongest first.
    ///
    /// - With a token (OAuth2) and a server that offers OAUTHBEARER or XOAUTH2: only those.
    /// - EXTERNAL first when a client certificate is configured, TLS is up and the server offers it.
    /// - Then SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5 as offered; APOP (when the greeting has a timestamp) before the
    ///   clear-text mechanisms on a connection without TLS, after them with TLS (where it adds nothing);
    ///   PLAIN and LOGIN as offered; USER/PASS always, last (servers without CAPA support it).
    ///
    /// Whether credentials may go in clear text at all is decided before (TLS, loopback or allow_insecure_auth).
    static func candidates(
        offered: Set<String>, hasToken: Bool, apopTimestamp: Bool, encrypted: Bool, clientCertificate: Bool
    ) -> [AuthMethod] {
        if hasToken {
            let oauth = [(AuthMethod.oauthbearer, "OAUTHBEARER"), (.xoauth2, "XOAUTH2")].filter {
                offered.contains($0.1)
            }
            if !oauth.isEmpty { return oauth.map(\.0) }
        }
        var out: [AuthMethod] = []
        if clientCertificate && encrypted && offered.contains("EXTERNAL") { out.append(.external) }
        for (method, name) in [
            (AuthMethod.scramSHA256, "SCRAM-SHA-256"), (.scramSHA1, "SCRAM-SHA-1"), (.cramMD5, "CRAM-MD5"),
        ]
        where offered.contains(name) {
            out.append(method)
        }
        if apopTimestamp && !encrypted { out.append(.apop) }
        if offered.contains("PLAIN") { out.append(.plain) }
        if offered.contains("LOGIN") { out.append(.login) }
        out.append(.user)
        if apopTimestamp && encrypted { out.append(.apop) }
        return out
    }

    /// What a `-ERR` to a login command means (RFC 2449 §8, RFC 3206).
    static func refusalKind(_ status: StatusLine) -> PollError.Kind {
        switch status.code {
        case .none, .auth: return .auth
        case .inUse: return .mailboxInUse
        case .loginDelay: return .loginDelay
        case .sysTemp: return .temporary
        case .sysPerm, .other: return .protocolError
        }
    }

    enum Next: Hashable {
        /// Try the next candidate mechanism.
        case tryNextMechanism
        /// The login has failed.
        case stop(PollError.Kind)
    }

    /// After a mechanism was refused with `status`: only a refusal without a response code, with another
    /// mechanism left to try, goes on.
    static func next(after status: StatusLine, moreToTry: Bool) -> Next {
        if status.code == nil && moreToTry { return .tryNextMechanism }
        return .stop(self.refusalKind(status))
    }
}

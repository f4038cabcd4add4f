import IMAPCore
import NIOCore

/// Session set-up: the greeting and STARTTLS (RFC 3501 §6.2.1).
extension IMAPConnection {
    func greeting() async throws {
        self.phase = "waiting for the greeting"
        let deadline = NIODeadline.now() + self.timeouts.connect
        let response = try await self.nextResponse(deadline: deadline)
        guard case .untaggedStatus(let status) = response, status.condition == .ok || status.condition == .preauth
        else {
            throw IMAPProtocolError("the greeting is not \"* OK\" or \"* PREAUTH\"")
        }
        self.trace?("< * \(status)")
        self.takeCapabilities(from: status)
        self.preauthenticated = status.condition == .preauth
    }

    func startTLS() async throws {
        guard !self.preauthenticated else {
            // RFC 3501 §6.2.1: STARTTLS only before authentication; a PREAUTH greeting on a connection that was to
            // be upgraded is a session nothing protects.
            throw IMAPTransportError(
                .stlsNotOffered, host: self.host, port: self.port, phase: "STARTTLS",
                detail: "the server greeted with PREAUTH, so the session cannot be protected by TLS")
        }
        if self.capabilities.names.isEmpty { try await self.refreshCapabilities() }
        guard self.capabilities.startTLS else {
            throw IMAPTransportError(.stlsNotOffered, host: self.host, port: self.port, phase: "STARTTLS")
        }
        let done = try await self.execute(.startTLS)
        guard done.isOK else {
            throw IMAPTransportError(
                .stlsRefused, host: self.host, port: self.port, phase: "STARTTLS", detail: "\(done.status)")
        }
        try await self.upgradeToTLS()
        // RFC 3501 §6.2.1: what was announced before TLS is forgotten.
        self.capabilities = IMAPCapabilities()
        try await self.refreshCapabilities()
    }

    /// After the OK to STARTTLS: TLS goes in front; nothing received in clear text after that OK counts.
    func upgradeToTLS() async throws {
        self.buffer.clear()
        self.parser = IMAPResponseParser()
        try await self.io.upgradeToTLS()
        self.isEncrypted = true
    }

    /// IMAP's face of the shared edge: its transport error, its own errors, its hint for TLS on the wrong port.
    static func edgeProfile(host: String, port: Int) -> MailChannel.Profile {
        MailChannel.Profile(
            transportError: { kind, phase, detail in
                IMAPTransportError(kind, host: host, port: port, phase: phase, detail: detail)
            },
            passesThrough: { error in
                error is IMAPTransportError || error is IMAPCommandError || error is IMAPProtocolError
                    || error is IMAPEncodingError || error is CancellationError
            },
            tlsPortHint: "; use imap:// with imap_tls = \"starttls\", or imaps:// on the port for implicit TLS (993)")
    }
}

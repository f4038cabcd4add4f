import IMAPCore
import NIOCore
import NIOSSL

/// Session set-up: the greeting, STARTTLS (RFC 3501 §6.2.1) and the TLS handshake.
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
        guard let tlsContext = self.tlsContext else { preconditionFailure("STARTTLS without a TLS context") }
        self.buffer.clear()
        self.parser = IMAPResponseParser()
        self.phase = "TLS handshake"
        let channel = self.channel
        let boundary = self.boundary
        let host = self.host
        let handshake = channel.eventLoop.makePromise(of: Void.self)
        do {
            try await channel.eventLoop.submit {
                boundary.value.arm()
                let sync = channel.pipeline.syncOperations
                let sni = TLSContextFactory.serverName(for: host)
                let ssl = try NIOSSLClientHandler(context: tlsContext, serverHostname: sni)
                try sync.addHandler(ssl, position: .first)
                try sync.addHandler(TLSHandshakeWaiter(promise: handshake), position: .after(ssl))
            }.get()
        } catch {
            handshake.fail(error)
            throw self.mapIOError(error)
        }
        try await self.awaitHandshake(handshake.futureResult)
        self.isEncrypted = true
        let deadline = NIODeadline.now() + self.timeouts.connect
        while try await self.readChunk(deadline: deadline).readableBytes > 0 {}
    }

    func awaitHandshake(_ future: EventLoopFuture<Void>) async throws {
        do {
            try await TLSHandshake.complete(
                future, channel: self.channel, timeout: self.timeouts.connect, host: self.host, pin: nil)
        } catch TLSHandshakeFailure.timeout {
            throw IMAPTransportError(.timeout, host: self.host, port: self.port, phase: "TLS handshake")
        } catch TLSHandshakeFailure.rejected(let detail, _) {
            let hint =
                TLSHandshake.pointsAtPort(detail)
                ? "; use imap:// with imap_tls = \"starttls\", or imaps:// on the port for implicit TLS (993)" : ""
            throw IMAPTransportError(
                .tlsFailed, host: self.host, port: self.port, phase: "TLS handshake", detail: detail + hint)
        }
    }
}

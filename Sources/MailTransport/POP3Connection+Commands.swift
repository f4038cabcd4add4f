import Crypto
import NIOConcurrencyHelpers
public import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
public import POP3Core

/// The POP3 commands as the poll uses them: each sends, reads its reply (and block), and maps -ERR to
/// ``POP3CommandError``.
extension POP3Connection {
    func readGreeting() async throws {
        self.phase = "waiting for the greeting"
        let event = try await self.nextEvent()
        guard case .greeting(let status, let ts) = event else {
            preconditionFailure("first event of a session is not the greeting")
        }
        self.greeting = status
        self.apopTimestamp = ts
        guard status.isOK else {
            throw POP3CommandError(command: "greeting", status: status)
        }
    }

    /// Sends a command expecting a single-line reply. Returns the reply whether +OK or -ERR.
    public func execute(_ command: Command) async throws -> StatusLine {
        try await self.send(command)
        return try await self.awaitResponse(to: command)
    }

    /// Waits for the single-line reply to `command` (after ``send(_:)``).
    public func awaitResponse(to command: Command) async throws -> StatusLine {
        // Each reply of a pipelined batch has its own deadline, counted from when it is awaited.
        self.startReply()
        let event = try await self.nextEvent()
        switch event {
        case .response(_, let status):
            return status
        default:
            throw POP3ProtocolError(.malformedReply(command: command.keyword, excerpt: "unexpected multi-line reply"))
        }
    }

    /// Sends a command and throws ``POP3CommandError`` unless the reply is +OK.
    @discardableResult
    public func executeExpectingOK(_ command: Command) async throws -> StatusLine {
        let status = try await self.execute(command)
        guard status.isOK else { throw POP3CommandError(command: command.description, status: status) }
        return status
    }

    /// CAPA. Returns nil if the server does not support CAPA (answers -ERR).
    public func capabilities() async throws -> Capabilities? {
        try await self.send(.capa)
        switch try await self.nextEvent() {
        case .capabilities(let caps, _): return caps
        case .response(_, let status) where !status.isOK: return nil
        default: throw POP3ProtocolError(.malformedReply(command: "CAPA", excerpt: "unexpected reply"))
        }
    }

    /// UIDL without argument. Returns nil when the server does not support UIDL.
    public func uidlListing() async throws -> [UIDLEntry]? {
        try await self.send(.uidl(nil))
        switch try await self.nextEvent() {
        case .uidlListing(let entries): return entries
        case .response(_, let status) where !status.isOK: return nil
        default: throw POP3ProtocolError(.malformedReply(command: "UIDL", excerpt: "unexpected reply"))
        }
    }

    /// UIDL and LIST, sent in one write when the server offers PIPELINING (the server builds the second listing
    /// while the first is parsed). The UIDL listing is nil when the server does not support UIDL.
    public func listings(pipelining: Bool) async throws -> (uidl: [UIDLEntry]?, scan: [ScanEntry]) {
        guard pipelining else { return (try await self.uidlListing(), try await self.scanListing()) }
        try await self.sendPipelined([.uidl(nil), .list(nil)])
        let uidl: [UIDLEntry]?
        switch try await self.nextEvent() {
        case .uidlListing(let entries): uidl = entries
        case .response(_, let status) where !status.isOK: uidl = nil
        default: throw POP3ProtocolError(.malformedReply(command: "UIDL", excerpt: "unexpected reply"))
        }
        return (uidl, try await self.receiveScanListing())
    }

    /// LIST without argument.
    public func scanListing() async throws -> [ScanEntry] {
        try await self.send(.list(nil))
        return try await self.receiveScanListing()
    }

    fileprivate func receiveScanListing() async throws -> [ScanEntry] {
        switch try await self.nextEvent() {
        case .scanListing(let entries): return entries
        case .response(let c, let status): throw POP3CommandError(command: c.description, status: status)
        default: throw POP3ProtocolError(.malformedReply(command: "LIST", excerpt: "unexpected reply"))
        }
    }

    /// Streams the response to an already sent RETR or TOP into `sink`. Returns the -ERR status if refused.
    public func receiveMessage(_ command: Command, sink: (ByteBuffer) throws -> Void) async throws -> StatusLine? {
        self.phase = "receiving \(command.description)"
        self.startReply()
        switch try await self.nextEvent() {
        case .messageBegin:
            break
        case .response(_, let status):
            return status
        default:
            throw POP3ProtocolError(.malformedReply(command: command.keyword, excerpt: "unexpected reply"))
        }
        while true {
            switch try await self.nextEvent() {
            case .messageBytes(let bytes):
                try sink(bytes)
            case .messageEnd:
                return nil
            default:
                throw POP3ProtocolError(.malformedReply(command: command.keyword, excerpt: "unexpected event"))
            }
        }
    }

    /// RFC 2595 STLS: upgrade to TLS, verifying the certificate, and discard what was learned in clear text.
    public func startTLS() async throws {
        guard let tlsContext = self.tlsContext else { preconditionFailure("STLS without a TLS context") }
        let guardBox = self.stlsGuard
        try await self.channel.eventLoop.submit { guardBox.value.arm() }.get()
        let status = try await self.execute(.stls)
        guard status.isOK else {
            throw TransportError(
                .stlsRefused, host: self.endpoint.host, port: self.endpoint.port, phase: "STLS",
                detail: status.description)
        }
        // Whatever arrived in clear after +OK is discarded (the guard drops it on the wire side too).
        self.buffer.clear()
        let handshake = self.channel.eventLoop.makePromise(of: Void.self)
        let host = self.endpoint.host
        let channel = self.channel
        try await channel.eventLoop.submit {
            let sni = TLSContextFactory.serverName(for: host)
            let sync = channel.pipeline.syncOperations
            let ssl = try NIOSSLClientHandler(context: tlsContext, serverHostname: sni)
            try sync.addHandler(ssl, position: .first)
            try sync.addHandler(TLSHandshakeWaiter(promise: handshake), position: .after(ssl))
        }.get()
        try await Self.awaitHandshake(handshake.futureResult, channel: channel, endpoint: self.endpoint)
        self.machine.tlsEstablished()
        self.isEncrypted = true
        self.trace?("(TLS established; the certificate verified)")
    }

    /// Connects only to look at the server's certificate (implicit TLS, or after STLS), accepting any; nothing
    /// else is sent. For diagnosing a failed verification and for `check --show-certificate`.
    public static func inspectCertificate(host: String, port: Int, tls: TLSMode, timeout: TimeAmount) async throws
        -> CertificateSummary
    {
        var endpoint = POP3Endpoint(host: host, port: port, tls: tls, timeout: timeout)
        endpoint.inspectOnly = true
        let context = try TLSContextFactory.makeContext(TLSClientOptions(verification: .inspectionOnly))
        return try await Self.withConnection(to: endpoint, tlsContext: context) { conn in
            if tls == .starttls {
                try await conn.startTLS()
            }
            let channel = conn.channel
            return try await channel.eventLoop.submit { () -> CertificateSummary in
                guard let cert = try channel.pipeline.syncOperations.nioSSL_peerCertificate() else {
                    throw TransportError(.tlsFailed, host: host, port: port, phase: "TLS", detail: "no certificate")
                }
                return CertificateSummary(cert, fingerprint: Array(SHA256.hash(data: try cert.toDERBytes())))
            }.get()
        }
    }

    /// The TLS version negotiated (`TLS 1.3`), nil on a clear connection.
    public func tlsVersion() async throws -> String? {
        guard self.isEncrypted else { return nil }
        let channel = self.channel
        return try await channel.eventLoop.submit { () -> String? in
            guard let version = try channel.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self).tlsVersion
            else { return nil }
            switch version {
            case .tlsv1: return "TLS 1.0"
            case .tlsv11: return "TLS 1.1"
            case .tlsv12: return "TLS 1.2"
            case .tlsv13: return "TLS 1.3"
            }
        }.get()
    }

    /// The certificate the server presented (verified, on a connection that is not inspect-only), nil on a clear one.
    public func peerCertificate() async throws -> CertificateSummary? {
        guard self.isEncrypted else { return nil }
        let channel = self.channel
        return try await channel.eventLoop.submit { () -> CertificateSummary? in
            guard let cert = try channel.pipeline.syncOperations.nioSSL_peerCertificate() else { return nil }
            return CertificateSummary(cert, fingerprint: Array(SHA256.hash(data: try cert.toDERBytes())))
        }.get()
    }

    /// QUIT: on success in TRANSACTION state the server runs the UPDATE state and removes messages marked deleted.
    public func quit() async throws -> StatusLine {
        try await self.execute(.quit)
    }
}

import Crypto
import NIOCore
import NIOSSL
import NIOTLS
import SystemSupport

/// Completes a promise when the TLS handshake finishes, or fails it with the handshake error.
///
/// Writing before the handshake completed made a certificate failure surface as "I/O on closed channel";
/// waiting for this gives the real error.
final class TLSHandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let promise: EventLoopPromise<Void>
    private var done = false

    init(promise: EventLoopPromise<Void>) { self.promise = promise }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls, !self.done {
            self.done = true
            self.promise.succeed(())
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !self.done {
            self.done = true
            self.promise.fail(error)
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !self.done {
            self.done = true
            self.promise.fail(ChannelError.eof)
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if !self.done {
            self.done = true
            self.promise.fail(ChannelError.ioOnClosedChannel)
        }
    }
}

/// Guards the STLS upgrade against injected clear text (the STARTTLS command-injection class of bugs).
///
/// Armed when STLS is sent: it passes the first line (the server's answer) and drops every byte after it until the
/// TLS handshake completes, so nothing that arrived in clear after `+OK` can be read as if it came over TLS.
final class STLSGuardHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private enum State {
        case open
        case awaitingReply
        case droppingUntilHandshake
    }

    private var state: State = .open

    func arm() { self.state = .awaitingReply }
    func disarm() { self.state = .open }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.state {
        case .open:
            context.fireChannelRead(data)
        case .droppingUntilHandshake:
            break
        case .awaitingReply:
            var buffer = self.unwrapInboundIn(data)
            if let lf = buffer.readableBytesView.firstIndex(of: 10) {
                let length = lf - buffer.readerIndex + 1
                if let line = buffer.readSlice(length: length) {
                    self.state = .droppingUntilHandshake
                    context.fireChannelRead(self.wrapInboundOut(line))
                }
            } else {
                context.fireChannelRead(data)
            }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls {
            self.state = .open
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Host name check after the handshake, for a `host` that is a DNS name.
///
/// NIOSSL accepts a certificate whose IP-address SAN matches the connected peer even when the requested host name
/// is not in the certificate; for a name, popfetch requires one of the certificate's DNS names to match it
/// (RFC 6125 §6.4: case-insensitive, a wildcard only as the whole left-most label).
enum HostNameCheck {
    static func dnsNames(of certificate: NIOSSLCertificate) -> [String] {
        certificate._subjectAlternativeNames().compactMap { san in
            guard san.nameType == .dnsName else { return nil }
            return san.contents.withUnsafeBufferPointer { String(decoding: $0, as: UTF8.self) }
        }
    }

    static func hasAnySAN(_ certificate: NIOSSLCertificate) -> Bool {
        certificate._subjectAlternativeNames().contains { _ in true }
    }

    static func matches(host: String, pattern: String) -> Bool {
        var h = host.lowercased()
        var p = pattern.lowercased()
        if h.hasSuffix(".") { h.removeLast() }
        if p.hasSuffix(".") { p.removeLast() }
        if p == h { return true }
        guard p.hasPrefix("*."), let dot = h.firstIndex(of: ".") else { return false }
        let hostRest = h[h.index(after: dot)...]
        let patternRest = p.dropFirst(2)
        return !hostRest.isEmpty && hostRest == patternRest && hostRest.contains(".")
    }

    /// Returns nil when the name is acceptable, else why not.
    static func verify(host: String, certificate: NIOSSLCertificate) -> String? {
        let names = Self.dnsNames(of: certificate)
        if names.isEmpty {
            // No SAN at all: NIOSSL already matched the common name against the host name.
            return Self.hasAnySAN(certificate)
                ? "certificate has no DNS name, so it cannot be valid for host name \(host)" : nil
        }
        if names.contains(where: { Self.matches(host: host, pattern: $0) }) { return nil }
        return "certificate is for \(names.prefix(5).joined(separator: ", ")), not for host name \(host)"
    }
}

/// What a certificate says, for error messages and `check --show-certificate`.
public struct CertificateSummary: Hashable, Sendable, CustomStringConvertible {
    public var fingerprint: [UInt8]
    public var dnsNames: [String]
    public var notValidBefore: Int
    public var notValidAfter: Int
    /// The subject's and the issuer's distinguished names, as `CN=..., O=..., C=...` (from the server: escape
    /// before printing).
    public var subject: String
    public var issuer: String

    init(_ cert: NIOSSLCertificate, fingerprint: [UInt8]) {
        self.fingerprint = fingerprint
        self.dnsNames = HostNameCheck.dnsNames(of: cert)
        self.notValidBefore = Int(cert.notValidBefore)
        self.notValidAfter = Int(cert.notValidAfter)
        self.subject = Self.distinguishedName(cert.subjectName)
        self.issuer = Self.distinguishedName(cert.issuerName)
    }

    static func distinguishedName(_ names: [SSLCertificateName]) -> String {
        let labels: [(SSLCertificateNameType, String)] = [
            (.commonName, "CN"), (.organization, "O"), (.organizationalUnit, "OU"), (.city, "L"), (.state, "ST"),
            (.country, "C"), (.emailAddress, "emailAddress"), (.userId, "UID"),
        ]
        let parts = names.map { name in
            let label = labels.first { $0.0 == name.type }?.1 ?? "?"
            return "\(label)=\(name.value)"
        }
        return parts.isEmpty ? "(empty)" : parts.joined(separator: ", ")
    }

    public var description: String {
        "names: \(self.dnsNames.isEmpty ? "(none)" : self.dnsNames.joined(separator: ", ")); "
            + "valid \(Self.date(self.notValidBefore)) to \(Self.date(self.notValidAfter)); "
            + "fingerprint \(CertificateFingerprint.format(self.fingerprint))"
    }

    static func date(_ t: Int) -> String {
        var tt = time_t(t)
        var tm = tm()
        gmtime_r(&tt, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday))"
    }

    /// Why this certificate is not acceptable for `host`, as precisely as can be told.
    public func diagnose(host: String, now: Int) -> String {
        if now > self.notValidAfter { return "certificate expired on \(Self.date(self.notValidAfter)) (\(self))" }
        if now < self.notValidBefore {
            return "certificate is not valid before \(Self.date(self.notValidBefore)) (\(self))"
        }
        if !TLSContextFactory.isIPLiteral(host) && !self.dnsNames.isEmpty
            && !self.dnsNames.contains(where: { HostNameCheck.matches(host: host, pattern: $0) })
        {
            return "certificate does not match host name \(host) (\(self))"
        }
        return "certificate is not issued by a trusted authority (unknown issuer or self-signed); trust its CA "
            + "with ca_file, or pin it with fingerprint = \"\(CertificateFingerprint.format(self.fingerprint))\" "
            + "(\(self))"
    }
}

#if canImport(Glibc)
    import Glibc
#endif

/// Why a TLS handshake did not give a trustworthy connection. Shared by the POP3 and SMTP transports.
enum TLSHandshakeFailure: Error {
    case timeout
    /// `certificateUnverified` is true when the chain failed verification (BoringSSL does not say why; a caller can
    /// look at the certificate on an inspect-only connection to tell the user).
    case rejected(detail: String, certificateUnverified: Bool)
}

enum TLSHandshake {
    /// Waits for the handshake (within `timeout`), then checks the peer: the pinned fingerprint when there is one,
    /// else the host name against the certificate's DNS names when `host` is a name (NIOSSL alone accepts a
    /// matching IP SAN for any name). Closes the channel on any failure.
    static func complete(
        _ future: EventLoopFuture<Void>, channel: any Channel, timeout: TimeAmount, host: String?, pin: [UInt8]?
    ) async throws {
        let timer = channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
        defer { timer.cancel() }
        do {
            // A cancelled task closes the channel, which ends the handshake.
            try await future.getUnlessCancelled { channel.close(promise: nil) }
        } catch {
            channel.close(promise: nil)
            if error is CancellationError || Task.isCancelled { throw CancellationError() }
            if case ChannelError.eof = error { throw TLSHandshakeFailure.timeout }
            throw TLSHandshakeFailure.rejected(
                detail: Self.describe(error), certificateUnverified: Self.isVerificationFailure(error))
        }
        let problem = try await channel.eventLoop.submit { () -> String? in
            guard let cert = try channel.pipeline.syncOperations.nioSSL_peerCertificate() else {
                return "server presented no certificate"
            }
            if let pin {
                let actual = Array(SHA256.hash(data: try cert.toDERBytes()))
                return actual == pin
                    ? nil
                    : "certificate pin mismatch: the server presented \(CertificateFingerprint.format(actual)), "
                        + "the account pins \(CertificateFingerprint.format(pin))"
            }
            guard let host, !TLSContextFactory.isIPLiteral(host) else { return nil }
            return HostNameCheck.verify(host: host, certificate: cert)
        }.get()
        if let problem {
            channel.close(promise: nil)
            throw TLSHandshakeFailure.rejected(detail: problem, certificateUnverified: false)
        }
    }

    static func isVerificationFailure(_ error: any Error) -> Bool {
        if case .handshakeFailed(let inner)? = error as? NIOSSLError {
            return "\(inner)".contains("CERTIFICATE_VERIFY_FAILED")
        }
        return false
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? NIOSSLExtraError, e == .failedToValidateHostname {
            return "certificate does not match the host name"
        }
        if let e = error as? NIOSSLError {
            if case .handshakeFailed(let inner) = e {
                let code = Self.reasonCode(inner)
                if let code, Self.notTLSCodes.contains(code) { return Self.notTLS }
                if "\(inner)".hasSuffix("EOF during handshake])") { return Self.closedInHandshake }
                if Self.isVerificationFailure(error) {
                    return "certificate verification failed (untrusted issuer, expired, or not yet valid)"
                }
                if let code { return "handshake failed (\(code))" }
                return "handshake failed: \(inner)"
            }
            return "\(e)"
        }
        // A reset or another socket error in the middle of the handshake: the system's words, not NIO's.
        if error is IOError { return TransportError.Kind.reason(error) }
        return "\(error)"
    }

    /// What the handshake failure says when the server's first bytes were not TLS at all.
    static let notTLS = "the server does not speak TLS on this port (it did not answer with a TLS handshake)"

    /// What it says when the server hung up in the middle of the handshake (Dovecot does on a clear-text port).
    static let closedInHandshake = "the server closed the connection during the TLS handshake (does it speak TLS here?)"

    /// Whether the failure suggests the port is not a TLS port.
    static func pointsAtPort(_ detail: String) -> Bool { detail == Self.notTLS || detail == Self.closedInHandshake }

    /// BoringSSL's reasons for a peer whose first bytes are no TLS record: a clear-text greeting (`+OK`, `220`), an
    /// HTTP server.
    static let notTLSCodes: Set<String> = [
        "WRONG_VERSION_NUMBER", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST", "UNKNOWN_PROTOCOL", "PACKET_LENGTH_TOO_LONG",
        "RECORD_TOO_LARGE", "ENCRYPTED_LENGTH_TOO_LONG",
    ]

    /// BoringSSL's reason code in an error ("WRONG_VERSION_NUMBER"), without the source path it comes with.
    static func reasonCode(_ error: any Error) -> String? {
        // "...:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER at /path/tls_record.cc:127]"
        let parts = "\(error)".split(separator: ":")
        guard let i = parts.firstIndex(of: "OPENSSL_internal"), i + 1 < parts.endIndex else { return nil }
        let code = parts[i + 1].prefix { $0.isUppercase || $0.isNumber || $0 == "_" }
        return code.isEmpty ? nil : String(code)
    }
}

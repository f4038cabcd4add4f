import NIOCore
public import NIOSSL

/// What a TLS client context checks and presents: the one set of TLS options for POP3, SMTP/LMTP and HTTPS
/// (the OAuth2 token endpoint). Defaults: full verification against the system trust store, TLS 1.2 or later, no
/// client certificate.
public struct TLSClientOptions: Hashable, Sendable {
    public enum Verification: Hashable, Sendable {
        /// The chain against the system trust store plus ``TLSClientOptions/trustRootsFile``, and the host name.
        case full
        /// The chain is not checked against authorities: the caller compares the leaf's SHA-256 fingerprint right
        /// after the handshake, before any byte is sent (`fingerprint = ...`).
        case pinnedFingerprint
        /// Any certificate: only for looking at a server's certificate (diagnosis, `check --show-certificate`),
        /// never for sending anything.
        case inspectionOnly
    }

    /// The oldest protocol version accepted (`tls_min_version`).
    public enum MinimumVersion: String, Hashable, Sendable, CaseIterable {
        case tls12 = "1.2"
        case tls13 = "1.3"
    }

    /// A PEM certificate (chain) and its key, for TLS client authentication (SASL EXTERNAL).
    public struct ClientCertificate: Hashable, Sendable {
        public var certificateFile: String
        public var keyFile: String
        public init(certificateFile: String, keyFile: String) {
            self.certificateFile = certificateFile
            self.keyFile = keyFile
        }
    }

    public var verification: Verification
    /// A PEM file of further trusted authorities (`ca_file`, `smtp_ca_file`), added to the system's.
    public var trustRootsFile: String?
    public var minimumVersion: MinimumVersion
    public var clientCertificate: ClientCertificate?

    public init(
        verification: Verification = .full, trustRootsFile: String? = nil, minimumVersion: MinimumVersion = .tls12,
        clientCertificate: ClientCertificate? = nil
    ) {
        self.verification = verification
        self.trustRootsFile = trustRootsFile
        self.minimumVersion = minimumVersion
        self.clientCertificate = clientCertificate
    }
}

/// The one place a TLS client context is made (POP3, SMTP/LMTP, the OAuth2 HTTPS client), and the TLS server name.
/// A context is built once per account and poll, and shared by its connections.
public enum TLSContextFactory {
    /// A client context for `options`. Throws when a file cannot be read (the trust roots, the client certificate
    /// or its key).
    public static func makeContext(_ options: TLSClientOptions) throws -> NIOSSLContext {
        try NIOSSLContext(configuration: Self.makeConfiguration(options))
    }

    /// The NIOSSL configuration behind ``makeContext(_:)``.
    static func makeConfiguration(_ options: TLSClientOptions) throws -> TLSConfiguration {
        var config = TLSConfiguration.makeClientConfiguration()
        switch options.verification {
        case .full: config.certificateVerification = .fullVerification
        case .pinnedFingerprint, .inspectionOnly: config.certificateVerification = .none
        }
        switch options.minimumVersion {
        case .tls12: config.minimumTLSVersion = .tlsv12
        case .tls13: config.minimumTLSVersion = .tlsv13
        }
        if let file = options.trustRootsFile {
            config.additionalTrustRoots = [.file(file)]
        }
        if let client = options.clientCertificate {
            config.certificateChain = try NIOSSLCertificate.fromPEMFile(client.certificateFile).map { .certificate($0) }
            config.privateKey = .privateKey(try NIOSSLPrivateKey(file: client.keyFile, format: .pem))
        }
        return config
    }

    /// Whether `host` is an IP literal (no SNI is sent for it; the IP address SAN is checked instead).
    public static func isIPLiteral(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }

    /// The name to send as TLS SNI for `host`: none for an address literal (RFC 6066 §3 forbids it), else the host.
    public static func serverName(for host: String?) -> String? {
        host.flatMap { Self.isIPLiteral($0) ? nil : $0 }
    }
}

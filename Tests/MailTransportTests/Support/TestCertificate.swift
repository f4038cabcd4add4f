import Foundation
import NIOSSL

/// A self-signed certificate for `localhost` and 127.0.0.1 (EC P-256, valid two days), made with openssl once per
/// test process, in a directory of its own.
struct TestCertificate: Sendable {
    let directory: String
    var certificateFile: String { self.directory + "/cert.pem" }
    var keyFile: String { self.directory + "/key.pem" }

    static let shared: Result<TestCertificate, any Error> = Result { try TestCertificate.make() }

    static func get() throws -> TestCertificate { try Self.shared.get() }

    private static func make() throws -> TestCertificate {
        let base = ProcessInfo.processInfo.environment["POPFETCH_TEST_TMP"] ?? NSTemporaryDirectory()
        let directory = base + "/mailtransport-cert-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let cert = TestCertificate(directory: directory)
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", cert.keyFile, "-out", cert.certificateFile,
        ]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        guard openssl.terminationStatus == 0 else {
            throw TestError("openssl could not make a test certificate (exit \(openssl.terminationStatus))")
        }
        return cert
    }

    /// A server context presenting this certificate.
    func serverContext() throws -> NIOSSLContext {
        let config = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(self.certificateFile).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: self.keyFile, format: .pem)))
        return try NIOSSLContext(configuration: config)
    }
}

struct TestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

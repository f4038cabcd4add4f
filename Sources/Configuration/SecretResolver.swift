import Foundation
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Resolves a ``SecretSource`` (a password, an OAuth2 client secret) to the secret. Errors never include the secret.
public enum SecretResolver {
    public static func resolve(_ source: SecretSource, account: String, timeout: Int = 60) async throws -> String {
        switch source {
        case .literal(let s):
            return s
        case .file(let path):
            // As ~/.netrc and the config itself: a secret others can read is refused, not used.
            var st = stat()
            if stat(path, &st) == 0 && st.st_mode & 0o077 != 0 {
                throw SecretError(
                    "\(account): password_file \(path) can be read by others "
                        + "(mode \(String(st.st_mode & 0o777, radix: 8))): chmod 600 \(path)")
            }
            guard let data = FileManager.default.contents(atPath: path) else {
                throw SecretError("\(account): password_file \(path) cannot be read")
            }
            // The first line, split on bytes: a String sees CR LF as one Character, so a file saved with CR LF line
            // ends would otherwise give the whole file, CR LF included, as the password.
            let secret = Self.firstLine(Array(data))
            if secret.isEmpty { throw SecretError("\(account): password_file \(path) is empty") }
            return secret
        case .command(let command):
            let devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)
            defer { if devnull >= 0 { close(devnull) } }
            // The command's output is captured by a temp file so the secret never passes through logs.
            let out: Int32
            do {
                out = try AnonymousFile.create(in: AnonymousFile.directories(preferring: nil))
            } catch {
                throw SecretError(
                    "\(account): no file for password_command's output: \(error.message)", isIOError: true)
            }
            defer { close(out) }
            let outcome = try await ProcessRunner.runCapturingStdout(
                arguments: ["/bin/sh", "-c", command], stdin: devnull, stdout: out, timeout: timeout)
            guard case .exited(0) = outcome.termination, !outcome.timedOut else {
                throw SecretError(
                    "\(account): password_command failed (\(outcome.termination))"
                        + (outcome.output.isEmpty ? "" : ": " + String(outcome.output.prefix(200))))
            }
            lseek(out, 0, SEEK_SET)
            var bytes: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 4096)
            while bytes.count < 65536 {
                let n = buf.withUnsafeMutableBytes { p -> Int in
                    guard let b = p.baseAddress else { return 0 }
                    return read(out, b, p.count)
                }
                if n <= 0 { break }
                bytes.append(contentsOf: buf[0..<n])
                if bytes.contains(10) { break }
            }
            let secret = Self.firstLine(bytes)
            if secret.isEmpty { throw SecretError("\(account): password_command printed nothing") }
            return secret
        }
    }

    /// The first line of `bytes`, without its LF or CR LF.
    static func firstLine(_ bytes: [UInt8]) -> String {
        var line = bytes.split(separator: 10, maxSplits: 1, omittingEmptySubsequences: false).first ?? []
        if line.last == 13 { line = line.dropLast() }
        return String(decoding: line, as: UTF8.self)
    }
}

/// A secret that cannot be had: its file is missing or empty, its command failed or printed nothing. The message
/// names the account and the source, never the secret.
public struct SecretError: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String
    /// The failure was local I/O (no temporary file), not the configured source.
    public var isIOError: Bool
    public var description: String { self.message }

    public init(_ message: String, isIOError: Bool = false) {
        self.message = message
        self.isIOError = isIOError
    }
}

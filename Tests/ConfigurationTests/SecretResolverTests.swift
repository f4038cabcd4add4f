import Foundation
import MailTestKit
import Testing

@testable import Configuration

@Suite("Secrets from files and commands", .offThePool)
struct SecretResolverTests {
    static let cases: [(String, String)] = [
        ("s3cret\n", "s3cret"),
        ("s3cret\r\n", "s3cret"),
        ("s3cret", "s3cret"),
        ("s3cret\r\nsecond line\r\n", "s3cret"),
        ("pa ss\u{e9}\nrest", "pa ss\u{e9}"),
    ]

    @Test("password_file: the first line, without its LF or CR LF (a file saved with CR LF line ends included)")
    func passwordFile() async throws {
        for (text, expected) in Self.cases {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("pw-\(UUID().uuidString)").path
            defer { unlink(path) }
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            chmod(path, 0o600)
            let secret = try await SecretResolver.resolve(.file(path), account: "a")
            #expect(secret == expected, "\(text.debugDescription)")
        }
    }

    @Test("password_file readable by others is refused, as ~/.netrc is: the error says chmod 600")
    func passwordFileOpen() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pw-\(UUID().uuidString)").path
        defer { unlink(path) }
        try Data("secret\n".utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o640)
        await #expect {
            _ = try await SecretResolver.resolve(.file(path), account: "a")
        } throws: { error in
            "\(error)".contains("can be read by others (mode 640): chmod 600") && !"\(error)".contains("secret")
        }
    }

    @Test("password_command: the first line of its output, without its LF or CR LF")
    func passwordCommand() async throws {
        for (text, expected) in Self.cases {
            // POSIX printf's octal escapes (dash's printf has no \x): the bytes exactly.
            let octal = Array(text.utf8).map { "\\" + String($0, radix: 8) }.joined()
            let secret = try await SecretResolver.resolve(.command("printf '\(octal)'"), account: "a")
            #expect(secret == expected, "\(text.debugDescription)")
        }
    }
}

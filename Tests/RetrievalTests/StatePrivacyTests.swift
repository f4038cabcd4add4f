import Foundation
import Testing

@testable import UIDLStore

#if canImport(Glibc)
    import Glibc
#endif

/// The state file holds OAuth2 refresh tokens: it is the user's alone.
@Suite("State file privacy")
struct StatePrivacyTests {
    static func directory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("privacy-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func mode(_ path: String) -> mode_t {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mode & 0o777 : 0
    }

    @Test("a state file readable by others (restored under umask 022) is made the owner's alone when opened")
    func readableIsMadePrivate() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/state.sqlite"
        do {
            let store = try StateStore(path: path)
            try store.saveOAuthTokens(
                mailbox: MailboxID("me@pop.example"), refreshToken: "REFRESH", accessToken: nil, expiresAt: nil)
        }
        for file in [path, path + "-wal", path + "-shm"] where FileManager.default.fileExists(atPath: file) {
            #expect(chmod(file, 0o644) == 0)
        }
        _ = try StateStore(path: path)
        for file in [path, path + "-wal", path + "-shm"] where FileManager.default.fileExists(atPath: file) {
            #expect(Self.mode(file) == 0o600, "\(file): \(String(Self.mode(file), radix: 8))")
        }
    }

    @Test("a state file that belongs to another user is refused, naming it")
    func foreignIsRefused() throws {
        guard geteuid() == 0 else { return }  // only root can give a file away
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/state.sqlite"
        #expect(FileManager.default.createFile(atPath: path, contents: nil))
        let nobody = getpwnam("nobody")
        let uid = nobody?.pointee.pw_uid ?? 65534
        #expect(chown(path, uid, 0) == 0)
        #expect(chmod(path, 0o666) == 0)
        #expect {
            _ = try StateStore(path: path)
        } throws: { error in
            "\(error)".contains(path) && "\(error)".contains("belongs to another user")
        }
    }
}

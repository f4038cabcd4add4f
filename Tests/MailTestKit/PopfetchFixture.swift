import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// One test's world: a user of a real POP3 server (Dovecot unless given), a config file, a state database, and an
/// MDA that saves each message.
package struct PopfetchFixture {
    /// The POP3 server the account polls.
    package let pop3: any POP3TestServer
    private let dovecot: DovecotServer?
    package let user: MailUser
    package let directory: String
    package var accountName = "test"

    package var configPath: String { self.directory + "/config.toml" }
    package var statePath: String { self.directory + "/state/state.sqlite" }
    package var outDirectory: String { self.directory + "/out" }
    package var mdaScript: String { self.directory + "/save-mda" }
    /// Write an exit code here to make the MDA fail with it (after reading its input).
    package var mdaExitFile: String { self.directory + "/mda-exit" }

    /// The Dovecot of a Dovecot fixture (its LMTP port, OAuth endpoint, ...); only the tests that built the fixture
    /// on Dovecot use it.
    package var server: DovecotServer {
        guard let dovecot = self.dovecot else { fatalError("this fixture polls \(type(of: self.pop3)), not Dovecot") }
        return dovecot
    }

    package init(server: DovecotServer? = nil) throws {
        let server = try server ?? DovecotServer.get()
        try self.init(pop3: server, dovecot: server)
    }

    /// A fixture whose account polls another real POP3 server (the second-server tests).
    package init(pop3 server: any POP3TestServer) throws {
        try self.init(pop3: server, dovecot: server as? DovecotServer)
    }

    private init(pop3 server: any POP3TestServer, dovecot: DovecotServer?) throws {
        self.pop3 = server
        self.dovecot = dovecot
        self.user = try server.addUser()
        self.directory = try makeTempDirectory("fixture")
        try FileManager.default.createDirectory(atPath: self.outDirectory, withIntermediateDirectories: true)
        let script = """
            #!/bin/sh
            # Test MDA: saves stdin as one file, atomically; exits with the code in mda-exit if that file exists.
            t=$(mktemp "\(self.outDirectory)/.tmp.XXXXXX") || exit 74
            cat > "$t" || exit 74
            if [ -f "\(self.mdaExitFile)" ]; then
              code=$(cat "\(self.mdaExitFile)")
              if [ "$code" != 0 ]; then rm -f "$t"; exit "$code"; fi
            fi
            mv "$t" "\(self.outDirectory)/msg.$(date +%s%N).$$"
            """
        try writeExecutable(script, to: self.mdaScript)
    }

    /// An MDA run once per recipient (`mda = "<path> %T"`): saves stdin under out/<recipient>/, after `delay`
    /// seconds of work if given; exits 75 for recipient "you" while the file `deferYou` (if given) exists.
    package func writePerRecipientMDA(deferYou: String? = nil, delay: String? = nil) throws -> String {
        let path = self.directory + "/per-recipient-mda"
        var script = "#!/bin/sh\nmkdir -p \"\(self.outDirectory)/$1\"\n"
        if let deferYou { script += "[ \"$1\" = you ] && [ -e \"\(deferYou)\" ] && exit 75\n" }
        script += "t=$(mktemp \"\(self.outDirectory)/$1/.t.XXXXXX\") && cat > \"$t\""
        if let delay { script += " && sleep \(delay)" }
        script += " && mv \"$t\" \"$t.msg\"\n"
        try writeExecutable(script, to: path)
        return path
    }

    /// What the per-recipient MDA saved for `recipient`, trace header stripped, one entry per copy.
    package func delivered(to recipient: String) throws -> [[UInt8]] {
        let dir = self.outDirectory + "/" + recipient
        guard FileManager.default.fileExists(atPath: dir) else { return [] }
        return try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".msg") }.map {
            try Self.stripTraceHeader(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/" + $0))))
        }
    }

    /// Writes config.toml (mode 0600) for the account. `extra` lines go into the [[account]] table.
    package func writeConfig(
        tls: String = "none", extra: String = "", mda: String? = nil, host: String = "127.0.0.1",
        port: Int? = nil, password: String? = nil, timeout: String = "10s",
        caFile: Bool = true, name: String? = nil, append: Bool = false,
        user: String? = nil
    ) throws {
        let port = port ?? (tls == "implicit" ? self.pop3.pop3sPort : self.pop3.pop3Port)
        let text = """
            [[account]]
            name = "\(name ?? self.accountName)"
            host = "\(host)"
            port = \(port)
            tls = "\(tls)"
            \(caFile ? "ca_file = \"\(self.pop3.caFile)\"" : "")
            user = "\(user ?? self.user.name)"
            password = "\(password ?? self.user.password)"
            \(mda == "" ? "" : "mda = \"\(mda ?? self.mdaScript)\"")
            timeout = "\(timeout)"
            \(extra)

            """
        let previous = append ? ((try? String(contentsOfFile: self.configPath, encoding: .utf8)) ?? "") : ""
        try (previous + text).write(toFile: self.configPath, atomically: true, encoding: .utf8)
        chmod(self.configPath, 0o600)
    }

    package func poll(_ extra: [String] = [], environment: [String: String] = [:]) throws -> RunResult {
        try popfetch(
            ["--config", self.configPath, "--state", self.statePath, "poll"] + extra, environment: environment)
    }

    /// The messages the MDA saved, each without popfetch's trace header, in no particular order.
    package func delivered() throws -> [[UInt8]] {
        let names = try FileManager.default.contentsOfDirectory(atPath: self.outDirectory).filter {
            $0.hasPrefix("msg.")
        }
        return try names.map { name in
            let data = try Data(contentsOf: URL(fileURLWithPath: self.outDirectory + "/" + name))
            return try Self.stripTraceHeader(Array(data))
        }
    }

    package func clearDelivered() throws {
        for name in try FileManager.default.contentsOfDirectory(atPath: self.outDirectory) {
            try FileManager.default.removeItem(atPath: self.outDirectory + "/" + name)
        }
    }

    /// Removes the `Received: from ... by ... with POP3 (popfetch ...)` header popfetch adds at the top.
    package static func stripTraceHeader(_ bytes: [UInt8]) throws -> [UInt8] {
        let prefix = Array("Received: from ".utf8)
        try #require(bytes.starts(with: prefix), "delivered message does not start with popfetch's trace header")
        var i = 0
        // first line, then continuation lines starting with a tab
        while i < bytes.count && bytes[i] != 10 { i += 1 }
        i += 1
        while i < bytes.count && bytes[i] == 9 {
            while i < bytes.count && bytes[i] != 10 { i += 1 }
            i += 1
        }
        let header = String(decoding: bytes[0..<min(i, bytes.count)], as: UTF8.self)
        #expect(header.contains("with POP3 (popfetch"))
        return Array(bytes[min(i, bytes.count)...])
    }
}

/// Deterministic test messages with the awkward parts: dot lines, 8-bit bytes, long lines, bare CR.
package enum Corpus {
    package static func message(
        _ i: Int, seed: Int = 1, bodyLines: Int = 20, bareCR: Bool = true, returnPath: String? = nil
    ) -> [UInt8] {
        var rng = SplitMix(seed: UInt64(seed * 100_003 + i))
        var s = "Return-Path: <\(returnPath ?? "sender\(i)@example.org")>\n"
        s += "From: Sender \(i) <sender\(i)@example.org>\nTo: rcpt@example.net\n"
        s += "Date: Thu, 26 Nov 2026 12:00:00 +0000\n"
        s += "Subject: message \(i) of seed \(seed)\nMessage-ID: <\(seed).\(i)@corpus.test>\n\n"
        var bytes = Array(s.utf8)
        for l in 0..<bodyLines {
            switch rng.next() % 8 {
            case 0: bytes += Array(".leading dot line \(l)\n".utf8)
            case 1: bytes += Array("..two dots\n".utf8)
            case 2: bytes += Array(".\n".utf8).dropLast() + Array(" \n".utf8)  // ". " line
            case 3: bytes += [0xC3, 0xA9, 0x20, 0xE2, 0x82, 0xAC, 0x20, 0xFF, 0x0A]  // 8-bit
            case 4: bytes += Array(repeating: UInt8(ascii: "L"), count: 1200) + [10]  // > 998 octets
            case 5: bytes += Array((bareCR ? "bare\rCR inside\n" : "no bare CR here\n").utf8)
            default:
                bytes += Array("plain line \(l) \(rng.next() % 1_000_000)\n".utf8)
            }
        }
        bytes += Array(".\n".utf8).dropLast() + Array("end\n".utf8)
        return bytes
    }

    package static func messages(_ count: Int, seed: Int = 1) -> [[UInt8]] {
        (0..<count).map { message($0, seed: seed) }
    }
}

package struct SplitMix {
    package var state: UInt64
    package init(seed: UInt64) { self.state = seed }
    package mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Compares two collections of messages as multisets.
package func sameMessages(_ a: [[UInt8]], _ b: [[UInt8]]) -> Bool {
    var counts: [[UInt8]: Int] = [:]
    for m in a { counts[m, default: 0] += 1 }
    for m in b { counts[m, default: 0] -= 1 }
    return counts.values.allSatisfy { $0 == 0 }
}

import Foundation
import MailTestKit
import Testing

@testable import Configuration

/// Issue 12: the man pages. popfetch.toml(5) is README's configuration reference, so README's key tables must name
/// exactly the keys the loader reads; popfetch(1) comes from the commands' own help.
@Suite("Man pages")
struct ManualTests {
    /// The keys README's configuration reference names in the first column of its tables.
    static func readmeKeys() throws -> Set<String> {
        let readme = try String(contentsOfFile: Package.root + "/README.md", encoding: .utf8)
        let lines = readme.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let start = try #require(lines.firstIndex { $0.hasPrefix("## Configuration reference") })
        let end = lines[(start + 1)...].firstIndex { $0.hasPrefix("## ") } ?? lines.count
        var keys: Set<String> = []
        // Rows of keys (the MDA's environment table, `POPFETCH_SENDER` and the rest, is not one).
        for line in lines[start..<end] where line.hasPrefix("| `") && !line.hasPrefix("| `POPFETCH_") {
            let first = line.split(separator: "|", omittingEmptySubsequences: true).first.map(String.init) ?? ""
            for quoted in first.split(separator: "`").enumerated() where quoted.offset % 2 == 1 {
                // `mda = "/usr/bin/procmail -d %T"` names mda; `oauth_client_secret[_command]` names two keys.
                let name = String(quoted.element.split(separator: " ").first ?? "")
                if let bracket = name.firstIndex(of: "[") {
                    let base = String(name[..<bracket])
                    keys.insert(base)
                    keys.insert(base + name[bracket...].dropFirst().dropLast())
                } else {
                    keys.insert(name)
                }
            }
        }
        return keys
    }

    @Test("README's key table is the loader's: every key documented, no documented key unknown")
    func keyTable() throws {
        let documented = try Self.readmeKeys()
        let known = AccountKeys.names.union(ConfigurationLoader.rootKeys).subtracting(["defaults", "account"])
        #expect(known.subtracting(documented).isEmpty, "not in README: \(known.subtracting(documented).sorted())")
        #expect(documented.subtracting(known).isEmpty, "not a key: \(documented.subtracting(known).sorted())")
    }

    @Test("scripts/manpages writes popfetch(1) and popfetch.toml(5) that groff formats without a warning")
    func pages() throws {
        let dir = try makeTempDirectory("man")
        let r = try runProgram(["/usr/bin/python3", Package.root + "/scripts/manpages", dir, Package.binary])
        #expect(r.status == 0, "\(r.stderr)")
        let one = try String(contentsOfFile: dir + "/popfetch.1", encoding: .utf8)
        for section in [
            ".SH SYNOPSIS", ".SH COMMANDS", ".SS poll", ".SS forget", ".SS config check", ".SH EXIT STATUS",
            ".SH FILES", ".SH ENVIRONMENT", ".SH EXAMPLES",
        ] {
            #expect(one.contains(section), "\(section) missing")
        }
        #expect(one.contains("exits 0 when new mail waits and 1 when there is none"), "check's own exit status")
        // The global options once, not under every command.
        #expect(one.components(separatedBy: "Log only errors.").count == 2)
        let five = try String(contentsOfFile: dir + "/popfetch.toml.5", encoding: .utf8)
        #expect(five.contains("\\fBflood_limit\\fR") && five.contains(".SH EXAMPLE"))
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/groff") {
            for page in ["popfetch.1", "popfetch.toml.5"] {
                let g = try runProgram(["/usr/bin/groff", "-man", "-Tutf8", "-ww", "-z", dir + "/" + page])
                #expect(g.status == 0 && g.stderr.isEmpty, "\(page): \(g.stderr)")
            }
        }
    }
}

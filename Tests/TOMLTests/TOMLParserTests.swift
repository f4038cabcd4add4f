import Foundation
import TOML
import Testing

@Suite("TOML 1.0 parser")
struct TOMLParserTests {
    func parse(_ text: String) throws(TOMLSyntaxError) -> TOMLTable { try TOMLParser.parse(text) }

    @Test("the value types of TOML 1.0")
    func values() throws {
        let t = try self.parse(
            """
            # a comment
            s = "a\\tb \\"q\\" \\u00e9 \\U0001F600"
            lit = 'C:\\path\\n'
            i = +1_000
            neg = -17
            zero = 0
            hex = 0xDEAD_beef
            oct = 0o755
            bin = 0b1101
            f1 = 3.14
            f2 = -1e-3
            f3 = 6.626E+34
            f4 = 1_0.5_0
            inf = -inf
            nan = +nan
            yes = true
            no = false
            odt = 1979-05-27T07:32:00.999-07:00
            odt2 = 1979-05-27 07:32:00Z
            ldt = 1979-05-27T07:32:00
            ld = 2024-02-29
            lt = 07:32:00.5
            arr = [ 1, "two", [3.0], { x = 4 }, ]
            multi = [
              1, # one
              2,
            ]
            inline = { a = 1, b.c = "d" }
            "quoted key" = 1
            '' = 2
            """)
        #expect(t["s"] == .string("a\tb \"q\" é 😀"))
        #expect(t["lit"] == .string("C:\\path\\n"))
        #expect(t["i"] == .integer(1000))
        #expect(t["neg"] == .integer(-17))
        #expect(t["zero"] == .integer(0))
        #expect(t["hex"] == .integer(0xDEAD_BEEF))
        #expect(t["oct"] == .integer(0o755))
        #expect(t["bin"] == .integer(13))
        #expect(t["f1"] == .float(3.14))
        #expect(t["f2"] == .float(-0.001))
        #expect(t["f3"] == .float(6.626e34))
        #expect(t["f4"] == .float(10.5))
        #expect(t["inf"] == .float(-.infinity))
        if case .float(let n) = t["nan"] {
            #expect(n.isNaN)
        } else {
            Issue.record("nan: \(String(describing: t["nan"]))")
        }
        #expect(t["yes"] == .boolean(true) && t["no"] == .boolean(false))
        #expect(t["odt"] == .dateTime("1979-05-27T07:32:00.999-07:00"))
        #expect(t["odt2"] == .dateTime("1979-05-27 07:32:00Z"))
        #expect(t["ldt"] == .dateTime("1979-05-27T07:32:00"))
        #expect(t["ld"] == .dateTime("2024-02-29"))
        #expect(t["lt"] == .dateTime("07:32:00.5"))
        let arr = try #require(t["arr"]?.array)
        #expect(arr.count == 4 && arr[1] == .string("two") && arr[2] == .array([.float(3)]))
        #expect(arr[3].table?["x"] == .integer(4))
        #expect(t["multi"] == .array([.integer(1), .integer(2)]))
        #expect(t["inline"]?.table?["b"]?.table?["c"] == .string("d"))
        #expect(t["quoted key"] == .integer(1) && t[""] == .integer(2))
        #expect(t.keys.first == "s" && t.keys.last == "")
    }

    @Test("multi-line strings: first newline dropped, line-ending backslash, up to two quotes before the closing three")
    func multilineStrings() throws {
        let t = try self.parse(
            "a = \"\"\"\nline 1\r\nline 2 \\\n     joined\"\"\"\"\"\nb = '''\nraw \\n ''x'''''\nc = \"\"\"\"\"\"\n")
        #expect(t["a"] == .string("line 1\r\nline 2 joined\"\""))
        #expect(t["b"] == .string("raw \\n ''x''"))
        #expect(t["c"] == .string(""))
    }

    @Test("tables, arrays of tables and dotted keys, with the line of every key and header")
    func tables() throws {
        let t = try self.parse(
            """
            top = 1
            [defaults]
            keep = true

            [[account]]
            name = "a"
            server.host = "h"

            [[account]]
            name = "b"
            [account.sub]
            x = 1
            [a.b.c]
            [a]
            d = 2
            [a.b]
            e = 3
            """)
        #expect(t.entry("top")?.line == 1)
        let defaults = try #require(t["defaults"]?.table)
        #expect(defaults.line == 2 && defaults.entry("keep")?.line == 3)
        let accounts = try #require(t["account"]?.array)
        #expect(accounts.count == 2)
        #expect(accounts[0].table?.line == 5 && accounts[1].table?.line == 9)
        #expect(accounts[0].table?.entry("name")?.line == 6)
        #expect(accounts[0].table?["server"]?.table?["host"] == .string("h"))
        #expect(accounts[1].table?["sub"]?.table?["x"] == .integer(1))
        let a = try #require(t["a"]?.table)
        #expect(a.line == 14 && a["d"] == .integer(2) && a["b"]?.table?["e"] == .integer(3))
        #expect(a["b"]?.table?["c"]?.table?.isEmpty == true)
    }

    @Test("CR LF line ends count lines as LF does; a BOM is skipped")
    func crlf() throws {
        let t = try self.parse("\u{FEFF}a = 1\r\n\r\n[t]\r\nb = 'x' # c\r\n")
        #expect(t["t"]?.table?.entry("b")?.line == 4 && t["t"]?.table?.line == 3)
        let e = try #require(throws: TOMLSyntaxError.self) { try self.parse("a = 1\r\nb = \r\n") }
        #expect(e.line == 2)
        let twice = try #require(throws: TOMLSyntaxError.self) { try self.parse("\u{FEFF}\u{FEFF}a = 1\n") }
        #expect(twice.line == 1 && twice.column == 1, "only one byte order mark is skipped; columns count after it")
        let afterBOM = try #require(throws: TOMLSyntaxError.self) { try self.parse("\u{FEFF}a = \n") }
        #expect(afterBOM.column == 5)
    }

    @Test("dotted keys may add to a table a header only made on its way (then it is defined), as tomllib does")
    func dottedKeysIntoImplicitTable() throws {
        let t = try self.parse("[a.b.c]\n[a]\nb.d = 1\nb.e = 2\n[a.b.f]\ng = 3\n")
        let b = try #require(t["a"]?.table?["b"]?.table)
        #expect(b.keys == ["c", "d", "e", "f"])
        #expect(b.entry("d")?.line == 3 && b["f"]?.table?["g"] == .integer(3))
        let x = try self.parse("[[x.a.b]]\n[x]\na.c = 1\n[[x.a.b]]\n")
        #expect(x["x"]?.table?["a"]?.table?["b"]?.array?.count == 2)
        #expect(x["x"]?.table?["a"]?.table?["c"] == .integer(1))
        let e = try #require(throws: TOMLSyntaxError.self) { try self.parse("[a.b.c]\n[a]\nb.d = 1\n[a.b]\n") }
        #expect(e.line == 4)
    }

    /// Each is refused with an error on the given line (and none traps).
    static let invalid: [(String, Int)] = [
        ("a = ", 1), ("a = 1\nb", 2), ("a = 1 b = 2", 1), ("= 1", 1), ("a = 1\na = 2", 2),
        ("[t]\n[t]", 2), ("[a.b]\n[a]\n[a]", 3), ("a = 1\n[a]", 2), ("a = [1]\n[[a]]", 2), ("[[a]]\n[a]", 2),
        ("[a]\nb.c = 1\n[a.b]", 3), ("a.b = 1\n[a]", 2), ("[a.b.c]\n[a]\nb.c.d = 1", 3),
        ("a = {x = 1}\na.y = 2", 2), ("a = {x = 1}\n[a.z]", 2), ("a = {x = 1, x = 2}", 1), ("a = {x = 1,}", 1),
        ("a = {x = 1\n}", 1), ("a = [1 2]", 1), ("a = [,]", 1), ("a = [1,,2]", 1), ("a = [}]", 1),
        ("a = [\u{2028}]", 1), ("a = [\u{85}]", 1), ("a = \"x", 1), ("a = \"x\ny\"", 1), ("a = 'x\ny'", 1),
        ("a = \"\"\"x", 1), ("a = '''x", 1), ("a = \"\\x\"", 1), ("a = \"\\uD800\"", 1), ("a = \"\\u12\"", 1),
        ("a = \"\u{1}\"", 1), ("a = '\u{7F}'", 1), ("# \u{0}\n", 1), ("a = 1\r", 1), ("a = 1\rb = 2", 1),
        ("a = 01", 1), ("a = 1__0", 1), ("a = _1", 1), ("a = 1_", 1), ("a = 0x", 1), ("a = -0x1", 1),
        ("a = 0xG", 1), ("a = 9223372036854775808", 1), ("a = -9223372036854775809", 1), ("a = 1.", 1),
        ("a = .5", 1), ("a = 1e", 1), ("a = 01.5", 1), ("a = 1.e5", 1), ("a = tru", 1), ("a = truex", 1),
        ("a = 2023-02-29", 1), ("a = 2023-13-01", 1), ("a = 2023-01-01T25:00:00", 1), ("a = 12:60:00", 1),
        ("a = 12:30", 1), ("a = 1979-05-27T07:32:00+25:00", 1), ("[", 1), ("[\n", 1), ("[.a]", 1), ("[=]", 1),
        ("[[", 1), ("[[ [a]]", 1), ("[ [a]]", 1), ("[a]]", 1), ("[[a]", 1), ("[a] x", 1), ("[\u{031E}\"\"ri\n", 1),
        ("a.\"\"\"b\"\"\" = 1", 1), ("a = \"\"\"\"\"\"\"\"\"", 1), ("é = 1", 1), ("a = b", 1),
        ("\n\n[a]\nb = 1\nb = 2\n", 5),
    ]

    @Test("invalid documents are refused with the line of the fault", arguments: Self.invalid)
    func refused(_ text: String, line: Int) {
        do {
            let t = try self.parse(text)
            Issue.record("accepted \(text.debugDescription) as \(t)")
        } catch {
            #expect(error.line == line, "\(text.debugDescription): \(error)")
            #expect(error.column >= 1)
        }
    }

    @Test("an integer too large says so, in any radix; a malformed one is not a number")
    func outOfRange() {
        for text in [
            "a = 9223372036854775808", "a = -9223372036854775809", "a = 0x8000000000000000",
            "a = 0o1000000000000000000000", "a = 0b1" + String(repeating: "0", count: 63),
        ] {
            #expect(throws: TOMLSyntaxError.self) { try self.parse(text) }
            do { _ = try self.parse(text) } catch {
                #expect(error.message.contains("out of range"), "\(text): \(error)")
            }
        }
        for text in ["a = 0xG", "a = 0x_1", "a = 0b12", "a = -0x1"] {
            do { _ = try self.parse(text) } catch {
                #expect(!error.message.contains("out of range"), "\(text): \(error)")
            }
        }
        #expect((try? self.parse("a = 0x7FFFFFFFFFFFFFFF"))?["a"] == .integer(Int64.max))
    }

    @Test("nesting is bounded: deep arrays, inline tables and headers are errors, not stack overflows")
    func depth() throws {
        let deep = String(repeating: "[", count: 100_000)
        #expect(throws: TOMLSyntaxError.self) { try self.parse("a = " + deep) }
        #expect(throws: TOMLSyntaxError.self) { try self.parse("a = " + String(repeating: "{b=", count: 100_000)) }
        let header = "[" + Array(repeating: "a", count: 10_000).joined(separator: ".") + "]"
        #expect(throws: TOMLSyntaxError.self) { try self.parse(header) }
        let ok = "a = " + String(repeating: "[", count: 20) + String(repeating: "]", count: 20)
        #expect(try self.parse(ok)["a"] != nil)
    }

    /// The deepest documents accepted, each nested `TOMLParser.maxDepth` levels.
    static var deepest: [String] {
        let n = TOMLParser.maxDepth
        return [
            "a = " + String(repeating: "[", count: n) + String(repeating: "]", count: n),
            "a = " + String(repeating: "{b=", count: n) + "1" + String(repeating: "}", count: n),
            "a = " + String(repeating: "[{b=", count: n / 2) + "1" + String(repeating: "}]", count: n / 2),
            "a = " + String(repeating: "{b.c=", count: n / 2) + "1" + String(repeating: "}", count: n / 2),
            "[" + Array(repeating: "a", count: n).joined(separator: ".") + "]\nb = 1",
        ]
    }

    final class Outcome: @unchecked Sendable {
        var accepted = false
    }

    @Test(
        "the deepest document accepted parses on a 512 KB stack (a secondary thread's on macOS), in a debug build too",
        arguments: Self.deepest)
    func deepOnSmallStack(_ text: String) {
        let done = DispatchSemaphore(value: 0)
        let outcome = Outcome()
        let thread = Thread {
            outcome.accepted = (try? TOMLParser.parse(text)) != nil
            done.signal()
        }
        thread.stackSize = 512 * 1024
        thread.start()
        done.wait()
        #expect(outcome.accepted)
        // One level deeper is an error.
        let deeper = text.hasPrefix("[") ? "[b." + text.dropFirst() : "a = [" + text.dropFirst(4) + "]"
        #expect(throws: TOMLSyntaxError.self) { try TOMLParser.parse(deeper) }
    }

    @Test("a long file parses in one linear pass")
    func long() throws {
        var text = ""
        for i in 0..<20_000 { text += "[[account]]\nname = \"a\(i)\"\nport = \(i)\n" }
        let t = try self.parse(text)
        let accounts = try #require(t["account"]?.array)
        #expect(accounts.count == 20_000)
        #expect(accounts[19_999].table?.entry("port")?.line == 60_000)
    }
}

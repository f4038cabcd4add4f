// Fuzz target for the TOML 1.0 parser (`TOMLParser.parse`), popfetch's own. Built and run by `scripts/fuzz TOML`.
//
// Any input is either a table or a `TOMLSyntaxError`; never a trap, a stack overflow or a hang. Every line the parser
// reports (an error's, a key's, a header's) is a line of the input, and a column is at least 1.
import TOML

func lineCount(_ text: String) -> Int { text.utf8.count { $0 == 10 } + 1 }

func checkLines(_ table: TOMLTable, lines: Int, depth: Int = 0) {
    require(depth <= TOMLParser.maxDepth + 1, "nesting \(depth)")
    if let l = table.line { require(l >= 1 && l <= lines, "header line \(l) of \(lines)") }
    for key in table.keys {
        guard let entry = table.entry(key) else {
            require(false, "key \(key.debugDescription) listed but absent")
            return
        }
        require(entry.line >= 1 && entry.line <= lines, "key line \(entry.line) of \(lines)")
        checkValue(entry.value, lines: lines, depth: depth + 1)
    }
}

func checkValue(_ value: TOMLValue, lines: Int, depth: Int) {
    switch value {
    case .table(let t): checkLines(t, lines: lines, depth: depth)
    case .array(let items): for item in items { checkValue(item, lines: lines, depth: depth + 1) }
    default: break
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTOML(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: count), as: UTF8.self)
    do {
        checkLines(try TOMLParser.parse(text), lines: lineCount(text))
    } catch {
        require(error.line >= 1 && error.line <= lineCount(text) && error.column >= 1, "\(error)")
    }
    return 0
}

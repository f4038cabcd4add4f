/// A table while it is being built. A class: headers and dotted keys reach into tables defined before them.
final class TableBuilder {
    enum Kind {
        /// Made on the way to a header's table (`a` of `[a.b]`): a later `[a]`, or dotted keys of its parent's
        /// section, may still define it.
        case implicit
        /// Defined by a `[header]` or `[[header]]` (or the root).
        case header
        /// Made by a dotted key (`a.b = 1` makes `a`): it may be extended by dotted keys of its own section only.
        case dotted
    }

    var kind: Kind
    var line: Int?
    var keys: [String] = []
    var nodes: [String: Node] = [:]
    /// Where it sits in the tree, for the depth limit.
    let depth: Int

    init(kind: Kind, line: Int?, depth: Int) {
        self.kind = kind
        self.line = line
        self.depth = depth
    }

    func insert(_ key: String, _ node: Node) {
        self.keys.append(key)
        self.nodes[key] = node
    }

    func freeze() -> TOMLTable {
        var table = TOMLTable(line: self.kind == .header ? self.line : nil)
        for key in self.keys {
            guard let node = self.nodes[key] else { continue }
            switch node {
            case .value(let v, let line):
                table.append(key, .init(value: v, line: line))
            case .table(let t, let line):
                table.append(key, .init(value: .table(t.freeze()), line: line))
            case .tables(let list, let line):
                table.append(key, .init(value: .array(list.items.map { .table($0.freeze()) }), line: line))
            }
        }
        return table
    }
}

/// The items of an array of tables (`[[a]]`), appended to by each header.
final class TableList {
    var items: [TableBuilder] = []
}

enum Node {
    /// A value set by `key = value` (arrays and inline tables included: they are closed once written).
    case value(TOMLValue, line: Int)
    case table(TableBuilder, line: Int)
    case tables(TableList, line: Int)
}

/// Text from outside (a server's greeting, CAPA lines, -ERR texts, an MTA's replies) made safe to print on a
/// terminal or write into a log line: C0 control characters, DEL and C1 controls (ESC sequences that recolour,
/// retitle or clear a terminal, CR that overwrites a line, BEL) become visible escapes such as `\x1b`, so one log
/// event stays one honest line. Printable text, tabs included, is unchanged.
public enum TerminalSafe {
    public static func escaped(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: Self.isControl) else { return s }
        var out = String.UnicodeScalarView()
        for scalar in s.unicodeScalars {
            guard Self.isControl(scalar) else {
                out.append(scalar)
                continue
            }
            let hex = String(scalar.value, radix: 16)
            out.append(contentsOf: ("\\x" + (hex.count < 2 ? "0" + hex : hex)).unicodeScalars)
        }
        return String(out)
    }

    static func isControl(_ c: Unicode.Scalar) -> Bool {
        (c.value < 0x20 && c != "\t") || c.value == 0x7F || (0x80...0x9F).contains(c.value)
    }
}

/// Decimal numbers as servers send them (message numbers, sizes, counts, seconds): ASCII digits only, no sign.
///
/// The digits may be as many as a hostile server likes; the value saturates at `Int.max` instead of overflowing,
/// and each caller range-checks or clamps it against a named limit in ``POP3Defaults``.
enum DecimalNumber {
    // number = 1*DIGIT
    /// The value of a non-empty run of ASCII digits, saturating at `Int.max`; `nil` for anything else.
    static func parse<C: Collection>(_ bytes: C) -> Int? where C.Element == UInt8 {
        guard !bytes.isEmpty else { return nil }
        var value = 0
        var saturated = false
        for b in bytes {
            guard b >= 48 && b <= 57 else { return nil }
            if saturated { continue }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int(b - 48))
            if o1 || o2 {
                saturated = true
                value = Int.max
            } else {
                value = sum
            }
        }
        return value
    }

    /// ``parse(_:)`` of a string's UTF-8 bytes.
    static func parse(_ text: Substring) -> Int? { self.parse(text.utf8) }
}

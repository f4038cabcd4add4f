// Compiled with every harness in Tests/Fuzz by scripts/fuzz.

/// A check of a harness: `precondition`, but its message survives `-O` (the fuzzers are optimized), so a failing
/// input says what it broke.
func require(
    _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String = "", file: StaticString = #fileID,
    line: UInt = #line
) {
    if !condition() { fatalError(message(), file: file, line: line) }
}

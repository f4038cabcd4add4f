// ASCII bytes the grammar names.
let tab: UInt8 = 0x09
let lf: UInt8 = 0x0A
let cr: UInt8 = 0x0D
let space: UInt8 = 0x20
let quote = UInt8(ascii: "\"")
let apostrophe = UInt8(ascii: "'")
let backslash = UInt8(ascii: "\\")
let hash = UInt8(ascii: "#")
let equals = UInt8(ascii: "=")
let dot = UInt8(ascii: ".")
let comma = UInt8(ascii: ",")
let openBracket = UInt8(ascii: "[")
let closeBracket = UInt8(ascii: "]")
let openBrace = UInt8(ascii: "{")
let closeBrace = UInt8(ascii: "}")

func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
func isHexDigit(_ b: UInt8) -> Bool {
    isDigit(b) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "f"))
        || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "F"))
}
func isBareKeyByte(_ b: UInt8) -> Bool {
    isDigit(b) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z"))
        || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
        || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
}
/// A control character TOML allows in no string or comment (tab is allowed; line ends are handled apart).
func isForbiddenControl(_ b: UInt8) -> Bool { (b < 0x20 && b != tab) || b == 0x7F }

/// Mailbox names in IMAP's modified UTF-7 (RFC 3501 §5.1.3): printable ASCII as itself (`&` as `&-`), anything
/// else as UTF-16 in a base64 whose `/` is `,`, between `&` and `-`. Gmail's labels with accents need it.
public enum ModifiedUTF7 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,".utf8)

    public static func encode(_ name: String) -> String {
        var out: [UInt8] = []
        var pending: [UInt16] = []
        func flush() {
            guard !pending.isEmpty else { return }
            var bytes: [UInt8] = []
            for unit in pending { bytes += [UInt8(unit >> 8), UInt8(unit & 0xFF)] }
            out.append(UInt8(ascii: "&"))
            var i = 0
            while i < bytes.count {
                let b0 = bytes[i]
                let b1 = i + 1 < bytes.count ? bytes[i + 1] : 0
                let b2 = i + 2 < bytes.count ? bytes[i + 2] : 0
                out.append(Self.alphabet[Int(b0 >> 2)])
                out.append(Self.alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
                if i + 1 < bytes.count { out.append(Self.alphabet[Int((b1 & 0x0F) << 2 | b2 >> 6)]) }
                if i + 2 < bytes.count { out.append(Self.alphabet[Int(b2 & 0x3F)]) }
                i += 3
            }
            out.append(UInt8(ascii: "-"))
            pending.removeAll()
        }
        for scalar in name.unicodeScalars {
            if scalar.value >= 0x20 && scalar.value <= 0x7E {
                flush()
                out.append(UInt8(scalar.value))
                if scalar == "&" { out.append(UInt8(ascii: "-")) }
            } else {
                pending += Array(String(scalar).utf16)
            }
        }
        flush()
        return String(decoding: out, as: UTF8.self)
    }
}

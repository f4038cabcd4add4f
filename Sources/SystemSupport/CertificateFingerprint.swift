/// `sha256:AB:CD:...` — the SHA-256 of the certificate's DER, as `openssl x509 -noout -fingerprint -sha256` prints it.
public enum CertificateFingerprint {
    public static func parse(_ s: String) -> [UInt8]? {
        var text = String(s.lowercased().filter { !$0.isWhitespace })
        if text.hasPrefix("sha256:") {
            text.removeFirst(7)
        } else if text.hasPrefix("sha256fingerprint=") {
            text.removeFirst(18)
        }
        let hex = text.filter { $0 != ":" }
        guard hex.count == 64 else { return nil }
        var out: [UInt8] = []
        var it = hex.makeIterator()
        while let a = it.next(), let b = it.next() {
            guard let v = UInt8(String([a, b]), radix: 16) else { return nil }
            out.append(v)
        }
        return out
    }

    public static func format(_ bytes: [UInt8]) -> String {
        "sha256:"
            + bytes.map { b in
                let h = String(b, radix: 16, uppercase: true)
                return h.count == 1 ? "0" + h : h
            }.joined(separator: ":")
    }
}

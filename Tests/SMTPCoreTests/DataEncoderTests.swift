import MailTestKit
import SMTPCore
import Testing

/// The DATA encoder's line-at-a-time fast path against the byte-by-byte definition, on random input split at random
/// places (dot lines, bare CR, CR LF, LF, lines split across chunks).
@Suite("SMTP DATA encoder")
struct DataEncoderTests {
    /// The definition: LF and CR LF become CRLF, a bare CR becomes CRLF, a dot at a line start is doubled.
    static func reference(_ input: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var atLineStart = true
        var pendingCR = false
        for b in input {
            if pendingCR {
                pendingCR = false
                out += [13, 10]
                atLineStart = true
                if b == 10 { continue }
            }
            switch b {
            case 10:
                out += [13, 10]
                atLineStart = true
            case 13:
                pendingCR = true
            default:
                if atLineStart && b == 46 { out.append(46) }
                out.append(b)
                atLineStart = false
            }
        }
        if pendingCR {
            out += [13, 10]
            atLineStart = true
        }
        if !atLineStart { out += [13, 10] }
        return out + [46, 13, 10]
    }

    @Test("fast path equals the definition on 2,000 random inputs and splits")
    func equivalence() {
        var rng = SplitMix(seed: 7)
        let alphabet: [UInt8] = [46, 46, 10, 10, 13, 65, 66, 32, 0xE9]
        for _ in 0..<2000 {
            let length = Int(rng.next() % 200)
            let input = (0..<length).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
            var encoder = DataEncoder()
            var out: [UInt8] = []
            var i = 0
            while i < input.count {
                let step = 1 + Int(rng.next() % 17)
                let j = min(input.count, i + step)
                encoder.encode(input[i..<j], into: &out)
                i = j
            }
            encoder.finish(into: &out)
            #expect(out == Self.reference(input), "input \(input)")
        }
    }
}

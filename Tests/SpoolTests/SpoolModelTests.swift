import NIOCore
import Testing

@testable import Spool

#if canImport(Glibc)
    import Glibc
#endif

/// The spool's append, byte by byte, as the specification reads: CRLF becomes LF (also across chunks), every other
/// byte is kept, and LF, NUL and 8-bit bytes are noticed. The spool itself works a chunk and a line at a time
/// (`memchr`, word-wide checks); on any input, cut anywhere, both must agree on every byte and flag. The header facts
/// are not modelled (that would copy the spool's own header reader): cut anywhere, they must be those of the same
/// message spooled in one piece. (Written to check a faster append, which measured no better and was not kept; the
/// check stays for the next one.)
struct SpoolModel {
    var out: [UInt8] = []
    var pendingCR = false
    var lineFeeds = 0
    var has8Bit = false
    var hasNUL = false

    mutating func append(_ chunk: [UInt8]) {
        for b in chunk {
            if b == 10 { self.lineFeeds += 1 }
            if b >= 0x80 { self.has8Bit = true }
            if b == 0 { self.hasNUL = true }
            if self.pendingCR {
                self.pendingCR = false
                if b != 10 { self.out.append(13) }
            }
            if b == 13 { self.pendingCR = true } else { self.out.append(b) }
        }
    }

    mutating func finish() {
        if self.pendingCR { self.out.append(13) }
        self.pendingCR = false
    }
}

@Suite("Spool file against its byte-by-byte model")
struct SpoolModelTests {
    /// A deterministic generator (SplitMix64), so a failure names a seed that reproduces it.
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            self.state &+= 0x9E37_79B9_7F4A_7C15
            var z = self.state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Spools `chunks` (in memory, after `trace`); the message, the spool's first line, and the stored bytes.
    func spool(_ chunks: [[UInt8]], trace: [UInt8]) throws -> (SpooledMessage, [UInt8]?, [UInt8]) {
        let s = try SpoolFile(directory: nil, inMemory: true)
        try s.begin(traceHeader: trace)
        for c in chunks { try s.append(ByteBuffer(bytes: c)) }
        let m = try s.finish()
        var stored = [UInt8](repeating: 0, count: trace.count + m.storedSize + 1)
        let n = stored.withUnsafeMutableBytes { pread(m.descriptor.fd, $0.baseAddress, $0.count, 0) }
        return (m, s.firstLine, Array(stored[0..<max(0, n)]))
    }

    /// Spools `chunks` and checks every byte and flag against the model, and the header facts against the same
    /// message spooled in one piece. Returns the message.
    @discardableResult
    func check(_ chunks: [[UInt8]], trace: [UInt8] = Array("Received: t\n".utf8), _ label: String) throws
        -> SpooledMessage
    {
        var model = SpoolModel()
        for c in chunks { model.append(c) }
        model.finish()
        let (m, firstLine, got) = try self.spool(chunks, trace: trace)
        let expected = trace + model.out
        let differsAt =
            (0..<min(got.count, expected.count)).first { got[$0] != expected[$0] } ?? min(got.count, expected.count)
        let same = got == expected
        #expect(same, "\(label): stored bytes differ from byte \(differsAt) on")
        #expect(m.storedSize == model.out.count, "\(label): storedSize")
        #expect(m.receivedSize == chunks.reduce(0) { $0 + $1.count }, "\(label): receivedSize")
        #expect(m.lineFeeds == model.lineFeeds + trace.filter { $0 == 10 }.count, "\(label): lineFeeds")
        #expect(m.has8Bit == model.has8Bit && m.hasNUL == model.hasNUL, "\(label): 8-bit/NUL")
        let (whole, wholeFirstLine, _) = try self.spool([chunks.flatMap { $0 }], trace: trace)
        #expect(m.headerHas8Bit == whole.headerHas8Bit, "\(label): header 8-bit")
        #expect(m.returnPath == whole.returnPath && m.fromAddress == whole.fromAddress, "\(label): addresses")
        #expect(m.dateHeader == whole.dateHeader, "\(label): Date")
        #expect(firstLine == wholeFirstLine, "\(label): first line")
        return m
    }

    /// Cuts `bytes` into chunks of random sizes (1 byte to 2 KB, sometimes empty).
    func chunked(_ bytes: [UInt8], _ rng: inout Seeded) -> [[UInt8]] {
        var chunks: [[UInt8]] = []
        var i = 0
        while i < bytes.count {
            let n = Int.random(in: 0...(Bool.random(using: &rng) ? 8 : 2048), using: &rng)
            chunks.append(Array(bytes[i..<min(bytes.count, i + n)]))
            i += n
        }
        return chunks
    }

    @Test("random messages of CR, LF, NUL, 8-bit and header bytes, cut at random: the spool and the model agree")
    func randomMessages() throws {
        let pieces: [[UInt8]] = [
            [13, 10], [13], [10], [0], [0xC3, 0xA9], [0xFF], Array("Return-Path: <r@x.example>".utf8),
            Array("From: F <f@y.example>".utf8), Array("Date: Tue, 1 Dec 2026".utf8), Array(" folded".utf8),
            Array("Subject: hi".utf8), Array("x".utf8), Array("a long enough run of plain text".utf8), [9], [32],
            [13, 13, 10], [13, 10, 13, 10],
        ]
        for seed in UInt64(1)...400 {
            var rng = Seeded(state: seed)
            var message: [UInt8] = []
            let parts = Int.random(in: 0...120, using: &rng)
            for _ in 0..<parts { message += pieces[Int.random(in: 0..<pieces.count, using: &rng)] }
            try self.check(self.chunked(message, &rng), "seed \(seed)")
        }
    }

    @Test("typical mail (CRLF lines, a header and a body), in NIO-sized and odd-sized chunks")
    func typicalMail() throws {
        var message = Array(
            "Return-Path: <a@b.example>\r\nFrom: A <a@b.example>\r\nDate: Tue,\r\n 1 Dec 2026\r\n\r\n".utf8)
        for i in 0..<2000 { message += Array("line \(i): body text, CRLF ended, \u{e9}t\u{e9}\r\n".utf8) }
        for size in [1, 2, 7, 8, 9, 63, 64, 65, 4096, 65536] {
            let chunks = stride(from: 0, to: message.count, by: size).map {
                Array(message[$0..<min(message.count, $0 + size)])
            }
            try self.check(chunks, "chunks of \(size)")
        }
    }

    @Test("the header scan reads a header line only if its LF is within the limit, cut anywhere")
    func headerScanLimit() throws {
        let limit = SpoolFile.headerScanLimit
        // Bare-LF header lines (stored as received, so positions are exact), the last one a From header whose end
        // falls a few bytes before, at or after the limit; then an LF, an 8-bit byte or an empty line.
        for shift in -3...3 {
            for tail: [UInt8] in [[10], [0xE9, 10], [10, 10], [13, 10]] {
                var header: [UInt8] = []
                let last = Array("From: <edge@x.example>".utf8)
                while header.count + 100 + last.count <= limit + shift {
                    header += Array("X-Filler: \(String(repeating: "f", count: 89))\n".utf8)
                }
                header += last + Array(repeating: UInt8(ascii: " "), count: limit + shift - header.count - last.count)
                let message = header + tail + Array("From: <late@x.example>\n\nbody\n".utf8)
                var rng = Seeded(state: UInt64(shift + 10))
                // Where the From line's LF is stored (a CR before it is dropped; an 8-bit byte is kept).
                let lf = limit + shift + (tail.first == 0xE9 ? 1 : 0)
                let expected = lf < limit ? "edge@x.example" : nil
                for (chunks, how) in [([message], "one chunk"), (self.chunked(message, &rng), "random chunks")] {
                    let m = try self.check(chunks, "shift \(shift), tail \(tail), \(how)")
                    #expect(m.fromAddress == expected, "shift \(shift), tail \(tail), \(how): LF at \(lf)")
                }
            }
        }
    }
}

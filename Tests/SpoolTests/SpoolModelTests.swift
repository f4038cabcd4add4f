import NIOCore
import Testing

@testable import Spool

#if canImport(Glibc)
    import Glibc
#endif

/// The spool's append, byte by byte, as the specification reads: CRLF becomes LF (also across chunks), every other
/// byte is kept; the header facts come from the stored bytes, one byte at a time, up to the scan limit. The spool
/// itself works a chunk and a line at a time (`memchr`, word-wide checks); on any input, cut anywhere, both must
/// agree on every byte and every fact. (Written to check a faster append, which measured no better and was not kept;
/// the check stays for the next one.)
struct SpoolModel {
    var out: [UInt8] = []
    var pendingCR = false
    var lineFeeds = 0
    var has8Bit = false
    var hasNUL = false
    var header8Bit = false
    var inHeader = true
    var scanned = 0
    var line: [UInt8] = []
    var firstLine: [UInt8]?
    var returnPath: String?
    var fromAddress: String?
    var dateValue: [UInt8]?
    var inDate = false

    mutating func append(_ chunk: [UInt8]) {
        for b in chunk {
            if b == 10 { self.lineFeeds += 1 }
            if b >= 0x80 { self.has8Bit = true }
            if b == 0 { self.hasNUL = true }
            if self.pendingCR {
                self.pendingCR = false
                if b != 10 { self.store(13) }
            }
            if b == 13 { self.pendingCR = true } else { self.store(b) }
        }
    }

    mutating func finish() {
        if self.pendingCR { self.store(13) }
        self.pendingCR = false
    }

    private mutating func store(_ b: UInt8) {
        self.out.append(b)
        guard self.inHeader else { return }
        if b >= 0x80 { self.header8Bit = true }
        self.scanned += 1
        if self.scanned > SpoolFile.headerScanLimit {
            self.inHeader = false
            return
        }
        if b != 10 {
            if self.line.count < SpoolFile.headerLineLimit { self.line.append(b) }
            return
        }
        let line = self.line
        self.line = []
        if self.firstLine == nil { self.firstLine = line.count < SpoolFile.headerLineLimit ? line : [] }
        if line.isEmpty {
            self.inHeader = false
            return
        }
        if line[0] == 32 || line[0] == 9 {
            if self.inDate, var v = self.dateValue, v.count < SpoolFile.dateValueLimit {
                v += line.prefix(SpoolFile.dateValueLimit - v.count)
                self.dateValue = v
            }
            return
        }
        self.inDate = false
        guard let colon = line.firstIndex(of: 58) else { return }
        let name = String(decoding: line[..<colon], as: UTF8.self).lowercased()
        let value = String(decoding: line[(colon + 1)...], as: UTF8.self)
        if name == "return-path" && self.returnPath == nil {
            self.returnPath = SpoolFile.extractAddress(value) ?? ""
        } else if name == "from" && self.fromAddress == nil {
            self.fromAddress = SpoolFile.extractAddress(value)
        } else if name == "date" && self.dateValue == nil {
            self.dateValue = Array(line[(colon + 1)...].prefix(SpoolFile.dateValueLimit))
            self.inDate = true
        }
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

    /// Spools `chunks` and checks every byte and fact against the model.
    func check(_ chunks: [[UInt8]], trace: [UInt8] = Array("Received: t\n".utf8), _ label: String) throws {
        var model = SpoolModel()
        for c in chunks { model.append(c) }
        model.finish()
        let s = try SpoolFile(directory: nil, inMemory: true)
        try s.begin(traceHeader: trace)
        for c in chunks { try s.append(ByteBuffer(bytes: c)) }
        let m = try s.finish()
        let size = trace.count + m.storedSize
        var stored = [UInt8](repeating: 0, count: size + 1)
        let n = stored.withUnsafeMutableBytes { pread(m.descriptor.fd, $0.baseAddress, $0.count, 0) }
        #expect(n == size, "\(label): file size")
        let got = Array(stored[0..<max(0, n)])
        let expected = trace + model.out
        let differsAt =
            (0..<min(got.count, expected.count)).first { got[$0] != expected[$0] } ?? min(got.count, expected.count)
        let same = got == expected
        #expect(same, "\(label): stored bytes differ from byte \(differsAt) on")
        #expect(m.storedSize == model.out.count, "\(label): storedSize")
        #expect(m.receivedSize == chunks.reduce(0) { $0 + $1.count }, "\(label): receivedSize")
        #expect(m.lineFeeds == model.lineFeeds + trace.filter { $0 == 10 }.count, "\(label): lineFeeds")
        #expect(m.has8Bit == model.has8Bit && m.hasNUL == model.hasNUL, "\(label): 8-bit/NUL")
        #expect(m.headerHas8Bit == model.header8Bit, "\(label): header 8-bit")
        #expect(m.returnPath == model.returnPath && m.fromAddress == model.fromAddress, "\(label): addresses")
        #expect(m.dateHeader == model.dateValue.map { String(decoding: $0, as: UTF8.self) }, "\(label): Date")
        #expect(s.firstLine == model.firstLine, "\(label): first line")
        withExtendedLifetime(s) {}
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

    @Test("the header scan stops at its limit exactly as the model does, with 8-bit bytes and LFs at the edge")
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
                try self.check([message], "shift \(shift), tail \(tail), one chunk")
                try self.check(self.chunked(message, &rng), "shift \(shift), tail \(tail), random chunks")
            }
        }
    }
}

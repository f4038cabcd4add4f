import Foundation
import NIOCore
import Testing

@testable import Spool

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Spool file")
struct SpoolTests {
    func spool(_ chunks: [[UInt8]], trace: String = "", inMemory: Bool = false) throws -> (SpooledMessage, [UInt8]) {
        let s = try SpoolFile(directory: nil, inMemory: inMemory)
        try s.begin(traceHeader: Array(trace.utf8))
        for c in chunks { try s.append(ByteBuffer(bytes: c)) }
        let m = try s.finish()
        lseek(m.descriptor.fd, 0, SEEK_SET)
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(m.descriptor.fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        withExtendedLifetime(s) {}
        return (m, out)
    }

    @Test("CRLF becomes LF even when split across chunks; bare CR, bare LF, NUL and 8-bit bytes are kept")
    func lineEnds() throws {
        let input = Array("Subject: x\r\n\r\na\r\nb\rc\nd\u{0}e\u{e9}\r\n".utf8)
        for split in 0...input.count {
            let (m, out) = try self.spool([Array(input[..<split]), Array(input[split...])])
            #expect(out == Array("Subject: x\n\na\nb\rc\nd\u{0}e\u{e9}\n".utf8), "split at \(split)")
            #expect(m.hasNUL && m.has8Bit)
            #expect(m.receivedSize == input.count)
        }
    }

    @Test("Return-Path and From give the envelope sender; 8-bit headers are noticed (SMTPUTF8)")
    func facts() throws {
        let (m, _) = try self.spool([Array("Return-Path: <a@b.example>\r\nFrom: X <x@y.example>\r\n\r\nbody\r\n".utf8)])
        #expect(m.envelopeSender == "a@b.example")
        #expect(!m.headerHas8Bit)
        let (n, _) = try self.spool([Array("From: Zoë <z@y.example>\r\nSubject: héllo\r\n\r\nbody é\r\n".utf8)])
        #expect(n.envelopeSender == "z@y.example")
        #expect(n.headerHas8Bit)
        let (o, _) = try self.spool([Array("From: z@y.example\r\n\r\nbody é\r\n".utf8)])
        #expect(!o.headerHas8Bit && o.has8Bit)
        let (p, _) = try self.spool([Array("Return-Path: <>\r\nFrom: z@y.example\r\n\r\nx\r\n".utf8)])
        #expect(p.envelopeSender == "", "the null sender stays null")
        let (q, _) = try self.spool([Array("From: Some One,\tz@y.example, w@v.example\r\n\r\nx\r\n".utf8)])
        #expect(q.envelopeSender == "z@y.example", "no <...>: the first token with an @")
        let (r, _) = try self.spool([Array("Return-Path: < \ta@b.example >\r\n\r\nx\r\n".utf8)])
        #expect(r.envelopeSender == "a@b.example", "blanks inside <...> trimmed")
        let (t, _) = try self.spool([Array("From: nobody here\r\n\r\nx\r\n".utf8)])
        #expect(t.envelopeSender == "", "no address at all")
    }

    @Test("a small message is spooled in memory (memfd), a large one on disk, both byte for byte the same")
    func inMemory() throws {
        func target(_ m: SpooledMessage) -> String {
            var buf = [CChar](repeating: 0, count: 512)
            let n = readlink("/proc/self/fd/\(m.descriptor.fd)", &buf, buf.count - 1)
            return n > 0 ? String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        }
        var body: [UInt8] = Array("From: a@b\r\nSubject: x\r\n\r\n".utf8)
        for i in 0..<3000 { body += Array("line \(i) of the message body, CRLF ended\r\n".utf8) }
        let (memory, memoryBytes) = try self.spool([Array(body[..<1000]), Array(body[1000...])], inMemory: true)
        let (disk, diskBytes) = try self.spool([Array(body[..<1000]), Array(body[1000...])])
        #expect(target(memory).hasPrefix("/memfd:popfetch-spool"), "\(target(memory))")
        #expect(!target(disk).hasPrefix("/memfd:"), "\(target(disk))")
        #expect(memoryBytes == diskBytes && memoryBytes.count == body.count - 3003)
        #expect(memory.digest == disk.digest && memory.storedSize == disk.storedSize)
        #expect(fcntl(memory.descriptor.fd, F_GETFD) & FD_CLOEXEC != 0, "close-on-exec: no child inherits it")
    }

    @Test("the spool counts LF bytes (trace header included) and keeps the first Date header, unfolded")
    func lineFeedsAndDate() throws {
        let input = Array(
            "Received: x\r\nDate: Tue, 1 Dec 2026\r\n 10:00:00 +0100\r\nDate: Wed, 2 Dec 2026\r\nX: y\r\n\r\na\nb\r\nc"
                .utf8)
        for split in [0, 9, 30, 31, input.count] {
            let (m, out) = try self.spool(
                [Array(input[..<split]), Array(input[split...])], trace: "Received: from h\n", inMemory: split % 2 == 0)
            #expect(m.lineFeeds == out.filter { $0 == 10 }.count && m.lineFeeds == 9, "split at \(split)")
            #expect(
                m.dateHeader == " Tue, 1 Dec 2026 10:00:00 +0100",
                "split at \(split): \(String(describing: m.dateHeader))")
        }
        let (none, _) = try self.spool([Array("From: a@b\r\n\r\nDate: not a header\r\n".utf8)])
        #expect(none.dateHeader == nil)
        let long =
            "Date: " + String(repeating: "x", count: 3000) + "\r\n \(String(repeating: "y", count: 3000))\r\n\r\n"
        let (capped, _) = try self.spool([Array(long.utf8)])
        #expect(capped.dateHeader?.utf8.count == SpoolFile.dateValueLimit)
    }

    @Test("the trace header comes first and is not part of the message facts")
    func traceHeader() throws {
        let (m, out) = try self.spool([Array("From: a@b\r\n\r\nx\r\n".utf8)], trace: "Received: from h\n")
        #expect(out.starts(with: Array("Received: from h\nFrom: a@b\n".utf8)))
        #expect(m.traceHeaderLength == 17 && m.storedSize == out.count - 17)
    }

    @Test("a spool file holds one message: a second begin is refused, and a finished message outlives its writer")
    func oneMessagePerSpool() throws {
        var message: SpooledMessage?
        do {
            let s = try SpoolFile(directory: nil)
            try s.begin(traceHeader: [])
            try s.append(ByteBuffer(bytes: Array("Subject: one\r\n\r\nbody\r\n".utf8)))
            message = try s.finish()
            #expect(throws: SpoolError.self) { try s.begin(traceHeader: []) }
        }
        // The writer is gone; the delivery still holding the message reads it whole.
        let m = try #require(message)
        var buf = [UInt8](repeating: 0, count: 256)
        let n = buf.withUnsafeMutableBytes { pread(m.descriptor.fd, $0.baseAddress, $0.count, 0) }
        #expect(n > 0)
        #expect(Array(buf[0..<max(0, n)]) == Array("Subject: one\n\nbody\n".utf8))
    }
}

@Suite("Spool reader")
struct SpoolReaderTests {
    func message(_ body: String, trace: String = "Received: x\n") throws -> SpooledMessage {
        let s = try SpoolFile(directory: nil)
        try s.begin(traceHeader: Array(trace.utf8))
        try s.append(ByteBuffer(bytes: Array(body.utf8)))
        return try s.finish()
    }

    @Test("reads exactly the recorded length, in full chunks, trace header first", arguments: [1, 3, 7, 64, 65536])
    func chunks(size: Int) throws {
        let m = try self.message("Subject: a\r\n\r\nline one\r\nline two\r\n")
        var reader = m.makeReader(chunkSize: size)
        var out: [UInt8] = []
        var sizes: [Int] = []
        while let n = try reader.nextChunk({ p -> Int in
            out += p
            return p.count
        }) {
            sizes.append(n)
        }
        #expect(out == Array("Received: x\nSubject: a\n\nline one\nline two\n".utf8))
        #expect(out.count == m.length)
        #expect(sizes.dropLast().allSatisfy { $0 == min(size, m.length) })
        #expect(reader.isAtEnd)
        #expect(try reader.nextChunk { _ in 1 } == nil)
    }

    @Test("prefix is the message after the trace header, bounded")
    func prefix() throws {
        let m = try self.message("Subject: a\r\n\r\nbody\r\n")
        #expect(try m.prefix(9) == Array("Subject: ".utf8))
        #expect(try m.prefix(1000) == Array("Subject: a\n\nbody\n".utf8))
    }

    @Test("a spool file shorter than its record is an error, never a short message")
    func truncatedFile() throws {
        let m = try self.message("Subject: a\r\n\r\nbody\r\n")
        #expect(ftruncate(m.descriptor.fd, off_t(m.length - 3)) == 0)
        var reader = m.makeReader(chunkSize: 4)
        #expect(throws: SpoolError.self) {
            while try reader.nextChunk({ _ in () }) != nil {}
        }
    }
}

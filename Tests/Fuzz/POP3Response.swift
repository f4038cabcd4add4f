// Fuzz target for POP3Core's `ResponseParser` (status lines, multi-line blocks, dot-unstuffing) and the single-line
// replies read from a status line (STAT, `UIDL n`). Built and run by `scripts/fuzz POP3Response`.
//
// Every `+OK` line is taken to start a multi-line block. The input is parsed twice, in one buffer and in chunks of
// 1 to 512 bytes (the first byte picks the size) whose consumed bytes are discarded as it goes, and both runs must
// agree event for event: a parser whose result depends on how the bytes arrived is wrong.
import POP3Core

import struct NIOCore.ByteBuffer

/// Chunk sizes: small ones split every token, large ones keep the runs fast (the parser looks for the end of a status
/// line from the start of what it holds each time bytes arrive, so 1-byte chunks cost the square of the line).
let chunkSizes = [1, 2, 3, 5, 8, 64, 256, 512]

enum ParserEvent: Equatable {
    case status(StatusLine)
    case block([UInt8])
    case blockEnd
}

struct ParserRun: Equatable {
    var events: [ParserEvent] = []
    var failed = false
    var leftover: [UInt8] = []
    var blockBytes = 0
}

func checkSingleLineReplies(_ status: StatusLine) {
    if let stat = try? status.maildropStatus() {
        require(stat.count >= 0 && stat.count <= POP3Defaults.maximumMessageNumber, "STAT count \(stat.count)")
        require(stat.size >= 0 && stat.size <= POP3Defaults.maximumMessageSize, "STAT size \(stat.size)")
    }
    if let entry = try? status.uidlEntry() {
        require(entry.number >= 1 && entry.number <= POP3Defaults.maximumMessageNumber, "UIDL n \(entry.number)")
        require(!entry.uid.isEmpty, "empty unique-id")
    }
}

func parse(_ input: [UInt8], chunkSize: Int, discard: Bool) -> ParserRun {
    var parser = ResponseParser()
    var buffer = ByteBuffer()
    var run = ParserRun()
    var offset = 0
    // The content of the block being read, however many slices it came in.
    var block: [UInt8] = []
    func append(_ event: ParserEvent) {
        if !block.isEmpty {
            run.events.append(.block(block))
            block.removeAll(keepingCapacity: true)
        }
        run.events.append(event)
    }
    while offset < input.count {
        let end = min(input.count, offset + chunkSize)
        buffer.writeBytes(input[offset..<end])
        offset = end
        do {
            while let event = try parser.parse(&buffer) {
                switch event {
                case .status(let status):
                    require(!parser.isInBlock, "status line inside a block")
                    require(status.text.utf8.count <= POP3Defaults.maximumStatusLineLength, "status too long")
                    checkSingleLineReplies(status)
                    append(.status(status))
                    if status.isOK {
                        parser.beginBlock()
                    }
                case .blockBytes(let bytes):
                    require(parser.isInBlock, "block bytes outside a block")
                    require(bytes.readableBytes > 0, "empty block slice")
                    run.blockBytes += bytes.readableBytes
                    block.append(contentsOf: bytes.readableBytesView)
                case .blockEnd:
                    require(!parser.isInBlock, "still in a block after its end")
                    append(.blockEnd)
                }
            }
        } catch is POP3ProtocolError {
            if !block.isEmpty { run.events.append(.block(block)) }
            run.failed = true
            return run
        } catch {
            fatalError("ResponseParser threw a foreign error: \(error)")
        }
        if discard { buffer.discardReadBytes() }
    }
    if !block.isEmpty { run.events.append(.block(block)) }
    run.leftover = Array(buffer.readableBytesView)
    let consumed = input.count - run.leftover.count
    require(run.blockBytes <= consumed, "\(run.blockBytes) block bytes from \(consumed) consumed")
    return run
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPOP3Response(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: count))
    let whole = parse(input, chunkSize: max(1, input.count), discard: false)
    let chunked = parse(input, chunkSize: chunkSizes[Int(input.first ?? 0) % chunkSizes.count], discard: true)
    require(whole == chunked, "chunked parse differs:\n\(whole)\n\(chunked)")
    return 0
}

// Fuzz target for POP3Core's `POP3ClientStateMachine`: greeting, pipelined commands, CAPA/LIST/UIDL listings and
// RETR/TOP blocks. Built and run by `scripts/fuzz POP3Client`.
//
// Input: four script bytes, then what the server sends. Each script byte names a command (low four bits, see
// `commands`); bit 7 sends the next one without waiting (pipelining). The script is sent in a loop, up to 16 commands,
// whenever nothing is in flight; the server's bytes arrive in chunks of 1 to 512 bytes (the first script byte's bits
// 4-6). Every event must answer the command the harness sent, in order, and every number in it must be in range.
import POP3Core

import struct NIOCore.ByteBuffer

let commands: [Command] = [
    .capa, .user("alice"), .pass("secret"), .apop(user: "alice", digest: "c4c9334bac560ecc979e58001b3e22fb"),
    .auth(mechanism: "PLAIN", initialResponse: nil), .stat, .list(nil), .uidl(nil), .list(1), .uidl(1), .retr(1),
    .top(1, lines: 0), .dele(1), .noop, .utf8, .quit,
]

func check(_ entries: [ScanEntry]) {
    require(entries.count <= POP3Defaults.maximumListingEntries)
    for e in entries {
        require(e.number >= 1 && e.number <= POP3Defaults.maximumMessageNumber, "LIST number \(e.number)")
        require(e.size >= 0 && e.size <= POP3Defaults.maximumMessageSize, "LIST size \(e.size)")
    }
}

func check(_ entries: [UIDLEntry]) {
    require(entries.count <= POP3Defaults.maximumListingEntries)
    for e in entries {
        require(e.number >= 1 && e.number <= POP3Defaults.maximumMessageNumber, "UIDL number \(e.number)")
        if e.isEscaped {
            let hex = e.uid.utf8.dropFirst("invalid ".utf8.count)
            require(!hex.isEmpty && hex.count % 2 == 0, "escaped key \(e.uid)")
        } else {
            require(!e.uid.isEmpty && e.uid.utf8.count <= POP3Defaults.maximumVerbatimUIDLength, "uid \(e.uid)")
            require(e.uid.utf8.allSatisfy { $0 >= 0x21 && $0 <= 0x7E }, "uid \(e.uid.debugDescription)")
        }
    }
}

func check(_ capabilities: Capabilities) {
    if let delay = capabilities.loginDelay {
        require(delay >= 0 && delay <= POP3Defaults.maximumLoginDelay, "LOGIN-DELAY \(delay)")
    }
    if case .days(let days)? = capabilities.expire {
        require(days >= 0 && days <= POP3Defaults.maximumExpireDays, "EXPIRE \(days)")
    }
    for c in capabilities.all { require(!c.name.isEmpty && c.name == c.name.uppercased()) }
}

struct Session {
    var machine = POP3ClientStateMachine()
    var script: [UInt8]
    var sent = 0
    /// The commands sent whose answers have not completely arrived, oldest first.
    var awaited: [Command] = []
    var inMessage = false
    var messageBytes = 0

    mutating func sendScript() {
        while self.sent < 16 && self.awaited.isEmpty {
            var pipelined = true
            while pipelined && self.sent < 16 {
                let byte = self.script[self.sent % self.script.count]
                self.sent += 1
                pipelined = byte & 0x80 != 0
                let command = commands[Int(byte & 0x0F)]
                do {
                    _ = try self.machine.send(command)
                    self.awaited.append(command)
                } catch is POP3ClientStateMachine.UsageError {
                    continue
                } catch {
                    return  // an encoding error: nothing queued
                }
            }
        }
    }

    mutating func answered(_ command: Command) {
        require(!self.awaited.isEmpty, "an answer to \(command) with nothing awaited")
        require(self.awaited.removeFirst() == command, "answer paired with the wrong command")
    }

    mutating func handle(_ event: POP3ClientStateMachine.Event, inputCount: Int) {
        switch event {
        case .greeting(let status, let timestamp):
            require(self.sent == 0 && self.awaited.isEmpty, "a second greeting")
            require(status.indicator != .continuation)
            if let timestamp { require(timestamp.hasPrefix("<") && timestamp.hasSuffix(">")) }
        case .response(let command, let status):
            self.answered(command)
            if status.isOK {
                require(!command.expectsMultilineOnSuccess, "+OK to \(command) without its block")
            }
        case .continuation:
            guard case .auth? = self.awaited.first else { fatalError("continuation without AUTH") }
            _ = try? self.machine.send(.saslResponse("*"))
            return
        case .capabilities(let capabilities, _):
            check(capabilities)
            self.answered(.capa)
        case .uidlListing(let entries):
            check(entries)
            self.answered(.uidl(nil))
        case .scanListing(let entries):
            check(entries)
            self.answered(.list(nil))
        case .messageBegin(let command, let status):
            require(status.isOK && self.awaited.first == command && !self.inMessage)
            self.inMessage = true
            return
        case .messageBytes(let bytes):
            require(self.inMessage)
            self.messageBytes += bytes.readableBytes
            require(self.messageBytes <= inputCount)
            return
        case .messageEnd:
            require(self.inMessage)
            self.inMessage = false
            guard let command = self.awaited.first else { fatalError("message end with nothing awaited") }
            switch command {
            case .retr, .top: self.answered(command)
            default: fatalError("message end for \(command)")
            }
        }
        require(self.machine.commandsInFlight == self.awaited.count, "in flight differs")
        self.sendScript()
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPOP3Client(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard count >= 4 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: count)
    var session = Session(script: Array(input.prefix(4)))
    let chunkSize = [1, 2, 3, 5, 8, 64, 256, 512][Int((input[0] >> 4) & 0x07)]
    var buffer = ByteBuffer()
    var offset = 4
    while offset < count {
        let end = min(count, offset + chunkSize)
        buffer.writeBytes(UnsafeBufferPointer(rebasing: input[offset..<end]))
        offset = end
        do {
            while let event = try session.machine.receive(&buffer) {
                session.handle(event, inputCount: count)
            }
        } catch is POP3ProtocolError {
            require(session.machine.state == .failed, "an error left the machine in \(session.machine.state)")
            return 0
        } catch {
            fatalError("receive threw a foreign error: \(error)")
        }
        buffer.discardReadBytes()
    }
    return 0
}

// Fuzz target for SMTPCore's `SMTPReplyParser` and `SMTPClientStateMachine.receivedReply`: every reply the parser
// makes of the server's bytes drives a client through greeting, EHLO/LHLO, STARTTLS, AUTH and transactions. Built
// and run by `scripts/fuzz SMTPReply`.
//
// Input: one byte of set-up (bit 0: LMTP; bits 1-2: security; bits 3-4: 1-4 recipients; bit 5: AUTH first; bits 6-7:
// chunk size 1, 7, 64 or the whole input), then what the server sends. The replies must be the same however the
// bytes arrive; each code is three digits; a machine that takes a reply outside 200-599 as anything but the end of
// the session is wrong, and every transaction ends with one result per recipient, in order.
import SMTPCore

import struct NIOCore.ByteBuffer

func replies(_ input: ArraySlice<UInt8>, chunkSize: Int) -> (replies: [SMTPReply], failed: Bool) {
    var parser = SMTPReplyParser()
    var buffer = ByteBuffer()
    var out: [SMTPReply] = []
    var offset = input.startIndex
    while offset < input.endIndex {
        let end = min(input.endIndex, offset + chunkSize)
        buffer.writeBytes(input[offset..<end])
        offset = end
        do {
            while let reply = try parser.parse(&buffer) {
                require(reply.code >= 0 && reply.code <= 999, "reply code \(reply.code)")
                require(!reply.lines.isEmpty && reply.lines.count <= SMTPDefaults.maximumReplyLines)
                for line in reply.lines {
                    require(line.utf8.count <= 3 * SMTPDefaults.maximumReplyLineLength, "line too long")
                }
                out.append(reply)
            }
        } catch is SMTPProtocolError {
            return (out, true)
        } catch {
            fatalError("SMTPReplyParser threw a foreign error: \(error)")
        }
        buffer.discardReadBytes()
    }
    return (out, false)
}

struct Client {
    var machine: SMTPClientStateMachine
    var recipients: [String]
    var authenticateFirst: Bool
    var transactions = 0
    var closed = false

    /// Carries out an action the way `SMTPConnection` would, until the machine waits for a reply.
    mutating func perform(_ first: SMTPClientStateMachine.Action) throws {
        var action = first
        while true {
            switch action {
            case .send, .sendAuthentication, .waitForReply:
                return
            case .startTLS:
                action = try self.machine.tlsEstablished()
            case .ready, .authenticated:
                if self.authenticateFirst && !self.machine.isAuthenticated && self.transactions == 0 {
                    self.authenticateFirst = false
                    action = try self.machine.authenticate(mechanism: "PLAIN", initialResponse: "AGFsaWNlAHNlY3JldA==")
                } else if self.transactions < 2 {
                    self.transactions += 1
                    action = try self.machine.beginTransaction(
                        sender: "a@example.org", recipients: self.recipients, size: 1_000, needsUTF8: false,
                        eightBit: true)
                } else {
                    action = self.machine.quit()
                }
            case .authenticationChallenge(let challenge):
                action = try self.machine.authenticationStep(response: challenge.isEmpty ? "" : "*")
            case .sendBody, .sendEmptyBody:
                action = try self.machine.bodySent()
            case .transactionComplete(let results):
                require(results.map(\.recipient) == self.recipients, "results \(results) for \(self.recipients)")
                for r in results {
                    switch r.status {
                    case .accepted: require(r.reply.isPositive, "accepted by \(r.reply.code)")
                    case .permanentFailure: require(r.reply.isPermanent, "permanent by \(r.reply.code)")
                    case .temporaryFailure: break
                    }
                }
                action = self.transactions < 2 ? .ready(self.machine.capabilities) : self.machine.quit()
            case .close:
                self.closed = true
                return
            }
        }
    }

    mutating func receive(_ reply: SMTPReply) -> Bool {
        do {
            let action = try self.machine.receivedReply(reply)
            if !(200...599).contains(reply.code), action != .close {
                fatalError("reply \(reply.code) taken as \(action)")
            }
            try self.perform(action)
            return !self.closed
        } catch is SMTPClientError {
            require(self.machine.state == .failed, "an error left the machine in \(self.machine.state)")
            return false
        } catch is SMTPCommand.EncodingError {
            return false
        } catch {
            fatalError("receivedReply threw \(error) in \(self.machine.state)")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSMTPReply(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard count >= 1 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data, count: count))
    let setup = input[0]
    let stream = input.dropFirst()
    let whole = replies(stream, chunkSize: max(1, stream.count))
    let chunkSizes = [1, 7, 64, max(1, stream.count)]
    let chunked = replies(stream, chunkSize: chunkSizes[Int(setup >> 6)])
    require(whole.replies == chunked.replies && whole.failed == chunked.failed, "chunked parse differs")

    let security: [SMTPClientStateMachine.Configuration.Security] = [.none, .startTLS, .implicitTLS, .none]
    var client = Client(
        machine: SMTPClientStateMachine(
            configuration: .init(
                dialect: setup & 1 == 0 ? .smtp : .lmtp, clientName: "client.example.org",
                security: security[Int((setup >> 1) & 3)])),
        recipients: (0...Int((setup >> 3) & 3)).map { "r\($0)@example.org" },
        authenticateFirst: setup & 0x20 != 0)
    for reply in whole.replies {
        guard client.receive(reply) else { break }
    }
    return 0
}

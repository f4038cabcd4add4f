import Foundation
import Logging
import MailTransport
import NIOCore
import POP3Core
import Spool

/// The commands of the transaction loop and their replies: the RETRs sent ahead in a window (with PIPELINING), the
/// DELEs owed, and what a stop must read and drop.
extension PollSession {
    /// For each item, the index of the fetch whose RETR may go out ahead of the item's reply: the next item that
    /// needs the server, when that is a fetch of a message small enough (in-memory spool size) to be read and dropped
    /// should the poll stop, and not one to be proven whole by a NOOP (``PollPlan/Item/confirmFirst``). Nil when a
    /// DELE comes first, or nothing follows. One pass: a window follows the chain, so the whole poll costs O(n).
    static func lookahead(_ items: [PollPlan.Item]) -> [Int?] {
        var out = [Int?](repeating: nil, count: items.count)
        var next: Int?
        for i in items.indices.reversed() {
            // Nothing goes out after a message to be proven by a NOOP before its NOOP's reply.
            out[i] = items[i].confirmFirst ? nil : next
            switch items[i].action {
            case .keep, .skipFailed, .skipLimit, .skipOversize:
                continue
            case .fetch:
                next = items[i].size <= SpoolFile.memoryLimit && !items[i].confirmFirst ? i : nil
            case .deleteDelivered, .deleteExpired, .deleteOversize:
                next = nil
            }
        }
        return out
    }

    /// Sends what `item` needs before it is read: its own RETR unless it went out ahead, and the RETRs of the next
    /// fetches of the chain (``lookahead(_:)``) while the window has room (none once a stop has been asked for),
    /// with the pending DELEs first: one write with PIPELINING. The replies are read in the same order, by
    /// ``retrieve(_:trackState:previousUnconfirmed:)`` or ``drainRequested()``.
    func request(
        _ index: Int, _ item: PollPlan.Item, chain: [Int?], items: [PollPlan.Item], pipelining: Bool
    ) async throws {
        var batch: [(index: Int, item: PollPlan.Item)] = []
        if self.requested.first?.number != item.number {
            precondition(self.requested.isEmpty, "RETRs sent ahead out of the plan's order")
            batch.append((index, item))
        }
        if !chain.isEmpty, !self.poller.environment.stopRequested() {
            var last = self.requested.last?.index ?? index
            var octets = self.requested.reduce(0) { $0 + $1.size } + batch.reduce(0) { $0 + $1.item.size }
            while let next = chain[last], self.requested.count + batch.count < Self.windowCommands,
                octets + items[next].size <= Self.windowOctets
            {
                batch.append((next, items[next]))
                octets += items[next].size
                last = next
            }
        }
        guard !batch.isEmpty else { return }
        var deles: [PendingDele] = []
        // With a window, every RETR of the poll is checked, the first too: a reply it lost would shift the rest.
        let checksUIDL = pipelining && !chain.isEmpty
        if pipelining {
            deles = self.pendingDeles
            self.pendingDeles = []
            var commands = deles.map { Command.dele($0.number) }
            for sent in batch {
                commands.append(.retr(sent.item.number))
                if checksUIDL { commands.append(.uidl(sent.item.number)) }
            }
            try await self.conn.sendPipelined(commands)
        } else {
            try await self.flushDeles()
            try await self.conn.send(.retr(item.number))
        }
        for (n, sent) in batch.enumerated() {
            self.requested.append(
                Requested(
                    index: sent.index, number: sent.item.number, size: sent.item.size, deles: n == 0 ? deles : [],
                    checksUIDL: checksUIDL))
        }
    }

    /// Sends the pending DELEs and waits for their replies. Returns whether a reply arrived. While a RETR sent
    /// ahead is unanswered they stay queued (replies come in the order of the commands): they go out with the next
    /// RETR, or here once that message has been received.
    @discardableResult
    func flushDeles() async throws -> Bool {
        guard !self.pendingDeles.isEmpty, self.requested.isEmpty else { return false }
        let deles = self.pendingDeles
        self.pendingDeles = []
        if self.pipelining {
            try await self.conn.sendPipelined(deles.map { .dele($0.number) })
            for d in deles {
                try await self.awaitDeleReply(d)
            }
        } else {
            for d in deles {
                try await self.conn.send(.dele(d.number))
                try await self.awaitDeleReply(d)
            }
        }
        return true
    }

    /// Reads the replies to the RETRs sent ahead (and the DELEs between them) and drops those messages: the poll
    /// stops before them. Returns whether there was one (a well-formed reply then followed the previous message).
    func drainRequested() async throws -> Bool {
        let all = self.requested
        self.requested = []
        for r in all {
            for d in r.deles {
                try await self.awaitDeleReply(d)
            }
            let cap = Self.sizeCap(listed: r.size)
            var received = 0
            _ = try await self.conn.receiveMessage(.retr(r.number)) { bytes in
                received += bytes.readableBytes
                if received > cap {
                    throw PollError(
                        .protocolError,
                        "message \(r.number) ran past \(cap) octets although LIST announced \(r.size); "
                            + "retrieval abandoned")
                }
            }
            if r.checksUIDL { _ = try await self.conn.awaitResponse(to: .uidl(r.number)) }
        }
        return !all.isEmpty
    }

    /// Reads the reply to a DELE already sent, and records an acknowledged one.
    func awaitDeleReply(_ d: PendingDele) async throws {
        let status = try await self.conn.awaitResponse(to: .dele(d.number))
        if status.isOK {
            self.deletedKeys.append(d.key)
        } else {
            self.logger.warning("server refused DELE \(d.number): \(self.redactor.apply("\(status)"))")
        }
    }
}

import NIOCore
import Testing

@testable import POP3Core

/// A regression guard for linear listings, without timing anything: a 500,000-entry UIDL listing and LIST listing,
/// fed in 64 KiB chunks as a socket delivers them, parse in about a second when the cost per entry is constant;
/// a listing that copied its entries on every append (as one did) would take hours and the test run would time out.
@Suite("Listing scale")
struct ListingScaleTests {
    static let count = 500_000

    func feed(_ session: inout Session, _ text: [UInt8]) throws -> [POP3ClientStateMachine.Event] {
        var events: [POP3ClientStateMachine.Event] = []
        var i = 0
        while i < text.count {
            let j = min(text.count, i + 65_536)
            events += try session.receive(Array(text[i..<j]))
            i = j
        }
        return events
    }

    @Test("a 500,000-entry UIDL listing and LIST listing parse entry for entry")
    func halfAMillion() throws {
        var session = try Session.inTransaction()
        _ = try session.send(.uidl(nil))
        var uidl: [UInt8] = Array("+OK\r\n".utf8)
        uidl.reserveCapacity(Self.count * 24)
        for n in 1...Self.count { uidl += Array("\(n) 000\(n)a5b\r\n".utf8) }
        uidl += Array(".\r\n".utf8)
        let events = try self.feed(&session, uidl)
        guard case .uidlListing(let entries) = events.last else {
            Issue.record("no UIDL listing: \(events.count) events")
            return
        }
        #expect(entries.count == Self.count)
        #expect(entries.last == UIDLEntry(number: Self.count, uid: "000\(Self.count)a5b"))

        _ = try session.send(.list(nil))
        var list: [UInt8] = Array("+OK\r\n".utf8)
        for n in 1...Self.count { list += Array("\(n) \(1000 + n % 7919)\r\n".utf8) }
        list += Array(".\r\n".utf8)
        let scan = try self.feed(&session, list)
        guard case .scanListing(let sizes) = scan.last else {
            Issue.record("no LIST listing")
            return
        }
        #expect(sizes.count == Self.count)
        #expect(sizes.last?.size == 1000 + Self.count % 7919)
    }
}

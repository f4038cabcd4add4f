import Testing

@testable import Retrieval

@Suite("LIST sizes by message number")
struct ListedSizesTests {
    @Test("numbers 1...n, a server's own numbering, gaps and duplicates: each size found, each duplicate refused")
    func lookups() {
        var sizes = ListedSizes()
        for n in 1...3000 {
            let inserted = sizes.insert(n * 10, for: n)
            #expect(inserted)
        }
        // A gap the array bridges, one it does not, and numbers no array holds.
        let others = [3500: 7, 10_000: 8, 0: 9, -5: 10, Int.max: 11, Int.min: 12]
        for (n, s) in others {
            let inserted = sizes.insert(s, for: n)
            #expect(inserted, "\(n)")
        }
        #expect(sizes.count == 3000 + others.count)
        for n in 1...3000 { #expect(sizes[n] == n * 10) }
        for (n, s) in others { #expect(sizes[n] == s, "\(n)") }
        // Unlisted numbers: in the bridged gap, past the end, and never listed.
        for n in [3001, 3499, 3501, 9999, 10_001, -1, Int.max - 1] { #expect(sizes[n] == nil, "\(n)") }
        // Every listed number is refused a second time, wherever it is kept; nothing changes.
        for n in [1, 1500, 3000, 3500, 10_000, 0, -5, Int.max, Int.min] {
            let inserted = sizes.insert(1, for: n)
            #expect(!inserted, "\(n)")
        }
        #expect(sizes[1500] == 15000 && sizes[10_000] == 8 && sizes.count == 3000 + others.count)
        // A number in the bridged gap can still be listed once.
        let once = sizes.insert(42, for: 3200)
        let twice = sizes.insert(43, for: 3200)
        #expect(once && !twice && sizes[3200] == 42)
    }

    @Test("numbers spread out by a server keep the array at most twice the numbers listed, and each is found")
    func spreadNumbers() {
        // Each gap under the bridging limit, but every number a gap's width from the last: a hostile listing of
        // 100,000 such lines used to take 2.5 GB (review of issue 9, finding 1).
        var sizes = ListedSizes()
        let step = ListedSizes.gapLimit + 1
        for k in 0..<20_000 {
            let inserted = sizes.insert(k, for: 1 + k * step)
            #expect(inserted)
        }
        #expect(sizes.count == 20_000)
        #expect(sizes.arraySlots <= 2 * sizes.count + ListedSizes.gapLimit)
        #expect((0..<20_000).allSatisfy { sizes[1 + $0 * step] == $0 })
        #expect(sizes[2] == nil && sizes[1 + 19_999 * step + 1] == nil)
        // A listing 1...n still goes into the array whole.
        var dense = ListedSizes()
        for n in 1...50_000 { _ = dense.insert(n, for: n) }
        #expect(dense.arraySlots == 50_000)
    }

    @Test("numbers listed in any order, and a zero size, are kept the same")
    func orderAndZero() {
        var sizes = ListedSizes()
        for n in stride(from: 500, through: 1, by: -1) {
            let inserted = sizes.insert(n == 7 ? 0 : n, for: n)
            #expect(inserted)
        }
        #expect(sizes.count == 500)
        #expect((1...500).allSatisfy { sizes[$0] == ($0 == 7 ? 0 : $0) })
        let literal: ListedSizes = [2: 20, 1: 10]
        #expect(literal[1] == 10 && literal[2] == 20 && literal.count == 2)
    }
}

@testable import Scheduler
import TestSupport
import Testing

@Suite struct MinTreeTests {
    @Test(arguments: [1, 2, 7, 64, 100])
    func findsWhatAScanFinds(count: Int) {
        // Random values, some infinite, changed at random: the least and every "first at or after p, at most x" agree
        // with a scan of the same values.
        var rng = SeededGenerator(seed: UInt64(count))
        var values = (0..<count).map { _ in Bool.random(using: &rng) ? Double.random(in: -10...10, using: &rng) : .infinity }
        var tree = MinTree(count: count) { values[$0] }
        for _ in 0..<200 {
            let p = Int.random(in: 0..<count, using: &rng)
            values[p] = [Double.infinity, -.infinity, Double.random(in: -10...10, using: &rng)][Int.random(in: 0...2, using: &rng)]
            tree.set(p, values[p])
            #expect(tree.least == values.min()!)
            #expect(tree.value(p) == values[p])
            let from = Int.random(in: 0...count, using: &rng), limit = Double.random(in: -12...12, using: &rng)
            #expect(tree.first(from: from, atMost: limit) == (from..<count).first { values[$0] <= limit })
        }
        // Slots past the count are never found, even with no limit.
        #expect(tree.first(from: count, atMost: .infinity) == nil)
    }
}

/// A minimum tree over a fixed number of slots: the least value in O(1), a slot set in O(log n), and the first slot at
/// or after a position whose value is at most a limit in O(log n). Slots past the count hold +infinity. The planner's
/// waiting jobs (by memory), its cards' room (negated: a maximum) and a round's first ends (`Dispatcher.earliestStart`)
/// each keep one.
struct MinTree {
    /// Leaves from `size` on, one per slot; each inner node the least of its two children.
    private var nodes: [Double]
    private let size: Int
    let count: Int

    init(count: Int, value: (Int) -> Double = { _ in .infinity }) {
        var size = 1
        while size < count { size *= 2 }
        self.size = size
        self.count = count
        nodes = [Double](repeating: .infinity, count: 2 * size)
        for i in 0..<count { nodes[size + i] = value(i) }
        for i in stride(from: size - 1, through: 1, by: -1) { nodes[i] = min(nodes[2 * i], nodes[2 * i + 1]) }
    }

    /// The least value of all slots (+infinity when none is less).
    var least: Double { nodes[1] }

    @inline(__always)
    func value(_ p: Int) -> Double { nodes[size + p] }

    mutating func set(_ p: Int, _ value: Double) {
        var i = size + p
        nodes[i] = value
        while i > 1 {
            i /= 2
            nodes[i] = min(nodes[2 * i], nodes[2 * i + 1])
        }
    }

    /// The first slot at or after `p` whose value is at most `limit`.
    func first(from p: Int, atMost limit: Double) -> Int? {
        guard p < count else { return nil }
        var i = size + p
        if nodes[i] > limit {
            // Up until a right sibling holds one, then down to its leftmost.
            while true {
                if i == 1 { return nil }
                if i % 2 == 0 && nodes[i + 1] <= limit { i += 1; break }
                i /= 2
            }
            while i < size { i = nodes[2 * i] <= limit ? 2 * i : 2 * i + 1 }
        }
        return i - size < count ? i - size : nil
    }
}

import Executors
import Foundation
import Scheduler
import Testing

/// A cold attempt's solo-equivalent time when its renderer reported how long its render took: the start-up as it
/// took, the render weighted by the rate it rendered at (S(k)/k of the k rendering beside it).
@Suite struct SoloEquivalentTests {
    let t0 = Date(timeIntervalSince1970: 1_000_000)
    func at(_ s: Double) -> Date { t0.addingTimeInterval(s) }

    /// S(2) = 1: two rendering each go at half speed.
    let sharing = SharingModel([2: 1])

    @Test func theStartUpCountsWholeAndTheRenderAtItsRates() {
        // 0-10 s two rendering (0.5 each), 10-20 s alone (1). It reported a 14 s render: it started rendering at 6 s,
        // so 6 s of start-up, 4 s at half speed and 10 s alone: 6 + 2 + 10.
        let along = [(until: at(10), k: 2), (until: at(20), k: 1)]
        #expect(abs(BatchSession.soloSeconds(started: t0, end: at(20), along: along, renderSeconds: 14, sharing: sharing) - 18) < 1e-9)
        // A 5 s render fell entirely in the second run: 15 s of start-up and 5 s alone.
        #expect(abs(BatchSession.soloSeconds(started: t0, end: at(20), along: along, renderSeconds: 5, sharing: sharing) - 20) < 1e-9)
        // All render: 10 x 0.5 + 10.
        #expect(abs(BatchSession.soloSeconds(started: t0, end: at(20), along: along, renderSeconds: 20, sharing: sharing) - 15) < 1e-9)
    }

    @Test func theRendersStretchesAreCountedFromItsStart() {
        // Alone 0-4 s, two rendering 4-10 s, three 10-16 s, alone again 16-20 s. A 14 s render began at 6 s: 4 s at 2,
        // 6 s at 3 and 4 s alone; its start-up (0-6 s) is in none of them.
        let along = [(until: at(4), k: 1), (until: at(10), k: 2), (until: at(16), k: 3), (until: at(20), k: 1)]
        #expect(BatchSession.stretches(started: t0, end: at(20), along: along, renderSeconds: 14) == [1: 4, 2: 4, 3: 6])
        // A warm request's whole time is its render.
        #expect(BatchSession.stretches(started: t0, end: at(20), along: along, renderSeconds: 20) == [1: 8, 2: 6, 3: 6])
        // The renderer's clock says 21 s: the extra second counts at the last k.
        #expect(BatchSession.stretches(started: t0, end: at(20), along: along, renderSeconds: 21) == [1: 9, 2: 6, 3: 6])
        #expect(BatchSession.stretches(started: t0, end: at(20), along: [], renderSeconds: 5) == [:])
    }

    @Test func aRenderLongerThanTheAttemptCountsAtTheLastRate() {
        // The renderer's clock says 21 s of render in a 20 s attempt: the extra second at the last rate, 0.5.
        let along = [(until: at(20), k: 2)]
        #expect(abs(BatchSession.soloSeconds(started: t0, end: at(20), along: along, renderSeconds: 21, sharing: sharing) - 10.5) < 1e-9)
    }
}

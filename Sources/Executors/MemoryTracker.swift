import Foundation

/// Peak device memory seen per GPU while each attempt ran, from nvidia-smi's `memory.used`.
final class MemoryTracker: @unchecked Sendable {
    private let lock = NSLock()
    private var baseline: [Int: Double] = [:]
    private var running: [String: Int] = [:]       // attempt key -> GPU
    private var peakByAttempt: [String: Double] = [:]
    private var alone: [String: Bool] = [:]        // the attempt had its GPU to itself the whole time
    private(set) var devicePeak: [Int: Double] = [:]

    func setBaseline(_ b: [Int: Double]) { lock.withLock { baseline = b } }

    func begin(_ key: String, gpu: Int) {
        lock.withLock {
            let shared = running.values.contains(gpu)
            for (k, g) in running where g == gpu { alone[k] = false }
            running[key] = gpu
            alone[key] = !shared
            peakByAttempt[key] = 0
        }
    }

    /// Ends tracking; returns the peak (GB above the baseline) when the attempt ran alone, else nil.
    func end(_ key: String) -> Double? {
        lock.withLock {
            running[key] = nil
            defer { peakByAttempt[key] = nil; alone[key] = nil }
            guard alone[key] == true, let p = peakByAttempt[key], p > 0 else { return nil }
            return p
        }
    }

    func sample(_ used: [Int: Double]) {
        lock.withLock {
            for (gpu, gb) in used { devicePeak[gpu] = max(devicePeak[gpu] ?? 0, gb) }
            for (key, gpu) in running {
                let above = (used[gpu] ?? 0) - (baseline[gpu] ?? 0)
                peakByAttempt[key] = max(peakByAttempt[key] ?? 0, above)
            }
        }
    }

    var peaks: [Int: Double] { lock.withLock { devicePeak } }
}

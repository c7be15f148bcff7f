import Foundation

/// Durations as people read them in progress lines and reports: 4.2s, 42s, 7m05s, 2h03m.
public func durationText(_ s: Double) -> String {
    if s < 10 { return String(format: "%.1fs", s) }
    let t = Int(s.rounded())
    if t >= 3600 { return "\(t / 3600)h\(String(format: "%02d", t % 3600 / 60))m" }
    if t >= 60 { return "\(t / 60)m\(String(format: "%02d", t % 60))s" }
    return "\(t)s"
}

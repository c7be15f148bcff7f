/// A video size written `W*H` (Live Avatar's notation), e.g. `688*368`.
public struct FrameSize: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    public var width: Int
    public var height: Int

    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }

    /// Parses `W*H` (also accepts `x` as the separator); nil when malformed or not positive.
    public init?(_ text: String) {
        let parts = text.split(whereSeparator: { $0 == "*" || $0 == "x" || $0 == "X" }).map(String.init)
        guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]), w > 0, h > 0, w <= 16384, h <= 16384 else { return nil }
        width = w
        height = h
    }

    /// Pixels per frame.
    public var pixels: Int { width * height }
    public var description: String { "\(width)*\(height)" }

    public static func < (a: FrameSize, b: FrameSize) -> Bool { (a.pixels, a.width) < (b.pixels, b.width) }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let size = FrameSize(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "bad size \(text)"))
        }
        self = size
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// A setting that may be on, off, or decided by avatar-batch.
public enum Switch: String, Sendable, Hashable, Codable {
    case on, off, auto
}

import Foundation

/// How a renderer turns `size` and the reference image into the frames it renders (`framing:` in a profile).
public enum Framing: String, Sendable, Hashable, Codable, CaseIterable {
    /// The frames are `size` exactly (the preview renderer, synthetic-dit).
    case exact
    /// `size` is a maximum area: the frame keeps the reference image's aspect ratio, scaled to fit under that
    /// area and padded to multiples of 64, never upscaled (Live Avatar's `get_size_less_than_area`).
    case fitArea = "fit-area"
}

/// Live Avatar's frame fitting, ported line by line so predictions use the frames the real code renders.
///
/// Source: Alibaba-Quark/LiveAvatar 9c2c38d, `liveavatar/models/wan/causal_s2v_pipeline.py:349-410`
/// (`get_size_less_than_area`, called by `get_gen_size` with the reference image's height and width and
/// `MAX_AREA_CONFIGS[size]`, which is width x height of `size`). Measured on an H200: a 1280x720 image gives
/// 640x384 at 688*368, 704x384 at 704*384, 384x256 at 384*256 and 832x448 at 480*832.
public enum FrameFit {
    /// The padded (width, height) the renderer generates for an image of `image` pixels under `area`.
    public static func fit(image: FrameSize, area: Int, divisor: Int = 64) -> FrameSize {
        let height = Double(image.height), width = Double(image.width), target = Double(area)
        let minScale: Double, maxScale: Double
        if image.pixels <= area {
            minScale = 0.1
            maxScale = 1.0
        } else {
            // The smallest scale whose worst-case padding still fits: d^2 + d(h + w)s + hw s^2 <= area, solved as the
            // upstream code writes it (its "2 * a * c" term included).
            let d = Double(divisor - 1)
            let b = d * (height + width), a = height * width, c = d * d - target
            minScale = (-b + (b * b - 2 * a * c).squareRoot()) / (2 * a)
            maxScale = (target / (height * width)).squareRoot()
        }
        for i in 0..<100 {
            let scale = maxScale - (maxScale - minScale) * Double(i) / 100
            let h = Int(height * scale), w = Int(width * scale)
            let paddedH = h + (64 - h % 64) % 64, paddedW = w + (64 - w % 64) % 64
            if paddedH * paddedW <= area { return FrameSize(width: paddedW, height: paddedH) }
        }
        // Upstream's fallback: the aspect ratio at the target area, rounded down to the divisor, never above the image.
        let aspect = width / height
        var w = Int(((target * aspect).squareRoot() / Double(divisor)).rounded(.down)) * divisor
        var h = Int(((target / aspect).squareRoot() / Double(divisor)).rounded(.down)) * divisor
        if Double(w) >= width || Double(h) >= height {
            w = image.width / divisor * divisor
            h = image.height / divisor * divisor
        }
        return FrameSize(width: max(w, divisor), height: max(h, divisor))
    }
}

import Crypto
import Foundation

/// SHA-256 for content keys and output digests, from apple/swift-crypto (BoringSSL's implementation on Linux),
/// behind the two calls the rest of avatar-batch makes. Tests check it against the NIST vectors.
public enum SHA256 {
    /// The hex digest of a string's UTF-8 bytes.
    public static func hex(_ string: String) -> String {
        hexString(Crypto.SHA256.hash(data: Data(string.utf8)))
    }

    /// The hex digest of bytes.
    public static func hex(_ data: Data) -> String {
        hexString(Crypto.SHA256.hash(data: data))
    }

    /// The hex digest of a file's contents, read in 1 MiB chunks.
    public static func hex(fileAt path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: path])
        }
        defer { try? handle.close() }
        var h = Crypto.SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            h.update(data: chunk)
        }
        return hexString(h.finalize())
    }

    private static let digits = Array("0123456789abcdef".utf8)

    private static func hexString(_ digest: some Sequence<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for b in digest {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

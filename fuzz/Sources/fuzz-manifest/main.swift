import Foundation
import Manifest

/// The fuzzer's scratch file: the loader reads manifests from disk, as the CLI does. One per process.
nonisolated(unsafe) let scratch: String = {
    let dir = (ProcessInfo.processInfo.environment["FUZZ_SCRATCH"] ?? NSTemporaryDirectory()) + "/avatar-batch-fuzz-\(getpid())"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    // Inputs the manifests may name, so that the checks past "file does not exist" are reached too.
    FileManager.default.createFile(atPath: dir + "/face.png", contents: Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 5, 0, 0, 0, 2, 0xD0, 8, 2, 0, 0, 0]))
    var wav = Data("RIFF".utf8) + Data([36, 0, 0, 0]) + Data("WAVEfmt ".utf8) + Data([16, 0, 0, 0, 1, 0, 1, 0, 0x80, 0x3E, 0, 0, 0, 0x7D, 0, 0, 2, 0, 16, 0])
    wav += Data("data".utf8) + Data([0, 0x7D, 0, 0]) + Data(count: 32000)
    FileManager.default.createFile(atPath: dir + "/a.wav", contents: wav)
    return dir + "/m.yaml"
}()

nonisolated(unsafe) let options: LoadOptions = {
    var o = LoadOptions()
    o.rendererSearchPath = [ProcessInfo.processInfo.environment["AVATAR_BATCH_RENDERERS"] ?? "renderers"]
    o.environment = ["LIVEAVATAR_HOME": "/nonexistent"]
    return o
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzManifest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FileManager.default.createFile(atPath: scratch, contents: Data(bytes: data, count: size))
    let result = ManifestLoader.load(path: scratch, options: options)
    // Either a manifest or at least one error, each with a position inside the file or at its top.
    if result.manifest == nil && !result.diagnostics.contains(where: { $0.severity == .error }) { fatalError("no manifest and no error") }
    for d in result.diagnostics where d.position.line < 1 || d.position.column < 1 { fatalError("diagnostic without a position: \(d)") }
    for d in result.diagnostics where d.severity == .error && (d.fix ?? "").isEmpty { fatalError("error without a fix: \(d)") }
    return 0
}

// SwiftPM starts an executable at <module>_main; libFuzzer's driver takes it from there.
@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
               _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt

@_cdecl("fuzz_manifest_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    var count = argc
    var args: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return withUnsafeMutablePointer(to: &args) { runDriver(&count, UnsafeMutablePointer(OpaquePointer($0)), fuzzManifest) }
}

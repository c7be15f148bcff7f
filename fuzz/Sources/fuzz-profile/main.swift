import Foundation
import Manifest

nonisolated(unsafe) let scratch: String = {
    let dir = (ProcessInfo.processInfo.environment["FUZZ_SCRATCH"] ?? NSTemporaryDirectory()) + "/avatar-batch-fuzz-\(getpid())"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir + "/profile.yaml"
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProfile(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FileManager.default.createFile(atPath: scratch, contents: Data(bytes: data, count: size))
    let (profile, diagnostics) = ProfileLoader.load(path: scratch)
    if profile == nil && !diagnostics.contains(where: { $0.severity == .error }) { fatalError("no profile and no error") }
    if let p = profile {
        // What the rest of the tool does with a loaded profile must hold as well.
        _ = p.commandFlags
        _ = ArgvTemplate.check(p.command)
        for f in p.sizes { _ = FrameFit.fit(image: FrameSize(width: 1280, height: 720), area: f.pixels) }
    }
    return 0
}

// SwiftPM starts an executable at <module>_main; libFuzzer's driver takes it from there.
@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
               _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt

@_cdecl("fuzz_profile_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    var count = argc
    var args: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return withUnsafeMutablePointer(to: &args) { runDriver(&count, UnsafeMutablePointer(OpaquePointer($0)), fuzzProfile) }
}

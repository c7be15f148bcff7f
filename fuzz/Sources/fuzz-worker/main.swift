import Executors
import Foundation

/// One input is a worker's side of the socket: split into lines as the channel splits them, each line parsed.
/// A line is a message or `Malformed`, never a crash; a message always has what its event needs.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWorker(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(bytes: data, count: size)
    for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: true) {
        do {
            switch try WorkerMessage.parse(Data(line)) {
            case let .ready(pid, load, resident):
                if pid < 1 || (load ?? 0) < 0 || (resident ?? 0) < 0 { fatalError("ready with pid \(pid)") }
            case let .done(job, peak, seconds):
                if job.isEmpty || (peak ?? 0) < 0 || (seconds ?? 0) < 0 { fatalError("done without a job") }
            case let .failed(job, error, _, _, _):
                if job.isEmpty || error.utf8.count > 8192 * 4 { fatalError("failed without a job") }
            }
        } catch is WorkerMessage.Malformed {
        } catch {
            fatalError("an error that is not Malformed: \(error)")
        }
    }
    return 0
}

// SwiftPM starts an executable at <module>_main; libFuzzer's driver takes it from there.
@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
               _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt

@_cdecl("fuzz_worker_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    var count = argc
    var args: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return withUnsafeMutablePointer(to: &args) { runDriver(&count, UnsafeMutablePointer(OpaquePointer($0)), fuzzWorker) }
}

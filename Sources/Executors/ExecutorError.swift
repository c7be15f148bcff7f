/// Errors of the executors.
public enum ExecutorError: Error, CustomStringConvertible, Sendable {
    case noGPUs(String)
    case badGPUIndex(Int, available: [Int])
    case launch(String)
    case environment(String)

    public var description: String {
        switch self {
        case let .noGPUs(why): return why
        case let .badGPUIndex(i, available): return "GPU \(i) does not exist; this machine has \(available.map(String.init).joined(separator: ", "))"
        case let .launch(why): return why
        case let .environment(why): return why
        }
    }
}

import Foundation

/// Runs the built avatar-batch (or any program) as a real process, for end-to-end tests.
public struct CLIResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

public enum CLI {
    /// Starts avatar-batch with `args`; the caller waits or signals.
    public static func start(_ args: [String], cwd: String? = nil, env: [String: String] = [:], program: String = PackagePaths.binary) throws -> (Process, Pipe, Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: program)
        p.arguments = args
        p.environment = environment(env)
        if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        return (p, out, err)
    }

    /// The environment tests run avatar-batch in: the working tree's renderers, and a history of this test process's
    /// own (never the user's).
    public static func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var e = ProcessInfo.processInfo.environment
        e["AVATAR_BATCH_RENDERERS"] = PackagePaths.renderers
        e["CI"] = "1"
        e["AVATAR_BATCH_HOME"] = testHome
        for (k, v) in extra { e[k] = v }
        return e
    }

    /// This test process's AVATAR_BATCH_HOME.
    public static let testHome = NSTemporaryDirectory() + "avatar-batch-test-home-\(ProcessInfo.processInfo.processIdentifier)"

    /// Runs avatar-batch to completion.
    public static func run(_ args: [String], cwd: String? = nil, env: [String: String] = [:]) throws -> CLIResult {
        try runProgram(PackagePaths.binary, args, cwd: cwd, env: env)
    }

    /// Runs any program to completion.
    public static func runProgram(_ program: String, _ args: [String], cwd: String? = nil, env: [String: String] = [:]) throws -> CLIResult {
        let (p, out, err) = try start(args, cwd: cwd, env: env, program: program)
        // Read both pipes while the process runs, so a full pipe never blocks it.
        let box = OutputBox()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { box.out = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter()
        DispatchQueue.global().async { box.err = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        p.waitUntilExit()
        group.wait()
        return CLIResult(status: p.terminationStatus, stdout: String(decoding: box.out, as: UTF8.self), stderr: String(decoding: box.err, as: UTF8.self))
    }
}

final class OutputBox: @unchecked Sendable {
    var out = Data()
    var err = Data()
}

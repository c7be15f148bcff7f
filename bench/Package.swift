// swift-tools-version: 6.1
// Benchmarks for avatar-batch, kept out of the main package so CI's build stays small.
//   swift run -c release --package-path bench avatar-batch-bench [NAME ...]
import PackageDescription

let package = Package(
    name: "avatar-batch-bench",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "avatar-batch", path: "..")],
    targets: [
        // Times the core paths (validation, the store, planning) and compares schedules on the simulator.
        .executableTarget(name: "avatar-batch-bench", dependencies: [.product(name: "AvatarBatchCore", package: "avatar-batch")]),
    ],
    swiftLanguageModes: [.v6]
)

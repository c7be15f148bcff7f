// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "avatar-batch",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "avatar-batch", targets: ["avatar-batch"]),
        .library(name: "AvatarBatchCore", targets: ["Manifest", "Scheduler", "Checkpoint", "Executors", "Reports"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", exact: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", exact: "1.0.2"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections", exact: "1.6.0"),
        // SHA-256 for content keys and output digests (BoringSSL on Linux: about 6x the hand-written one it replaced).
        .package(url: "https://github.com/apple/swift-crypto", exact: "4.5.2"),
        // swift-subprocess's own dependency; named so the executors can pass it file descriptors.
        .package(url: "https://github.com/apple/swift-system", from: "1.5.0"),
    ],
    targets: [
        // The YAML model: loading, validation with positions, renderer profiles, jobs and content keys.
        .target(name: "Manifest", dependencies: [
            .product(name: "Yams", package: "Yams"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "SystemPackage", package: "swift-system"),
        ]),
        // Pure decisions: memory/time prediction, filter + score placement, the retry ladder, plan simulation.
        .target(name: "Scheduler", dependencies: [
            "Manifest",
            .product(name: "Collections", package: "swift-collections"),
        ]),
        // The SQLite store (GRDB): schema, migrations, state transitions, resume queries.
        .target(name: "Checkpoint", dependencies: [
            "Manifest",
            .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        // The batch session and its executors (local processes, Slurm): every side effect of a run.
        .target(name: "Executors", dependencies: [
            "Manifest", "Scheduler", "Checkpoint",
            .product(name: "Subprocess", package: "swift-subprocess"),
            .product(name: "SystemPackage", package: "swift-system"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The read model over the store and what the CLI prints: status, report (HTML, JSON, JUnit), plan and
        // validate documents, each a Codable type with a schema in docs/schemas/.
        .target(name: "Reports", dependencies: [
            "Manifest", "Scheduler", "Checkpoint",
            .product(name: "Subprocess", package: "swift-subprocess"),
        ]),
        // The command line: parses arguments and prints.
        .executableTarget(name: "avatar-batch", dependencies: [
            "Manifest", "Scheduler", "Checkpoint", "Executors", "Reports",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Fixtures shared by the test targets.
        .target(name: "TestSupport", dependencies: ["Manifest", "Scheduler"], path: "Tests/TestSupport"),
        .testTarget(name: "ManifestTests", dependencies: ["Manifest", "TestSupport"]),
        .testTarget(name: "SchedulerTests", dependencies: ["Scheduler", "Manifest", "TestSupport"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint", "Manifest", "TestSupport"]),
        .testTarget(name: "ExecutorsTests", dependencies: ["Executors", "Reports", "Checkpoint", "Scheduler", "Manifest", "TestSupport", "avatar-batch"],
                    exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)

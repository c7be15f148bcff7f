// swift-tools-version: 6.1
// Coverage-guided fuzzing (libFuzzer) of the manifest and profile loaders and the worker protocol's parser, kept out of the main package: every module
// is built with -sanitize=fuzzer,address. See fuzz/README.md; `bash fuzz/run.sh TARGET SECONDS` builds and runs one.
import PackageDescription

let package = Package(
    name: "avatar-batch-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "avatar-batch", path: "..")],
    targets: [
        // One manifest per input: loaded and validated with the installed profiles, files checked, no probing.
        .executableTarget(name: "fuzz-manifest", dependencies: [.product(name: "AvatarBatchCore", package: "avatar-batch")],
                          swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
        // One renderer profile per input.
        .executableTarget(name: "fuzz-profile", dependencies: [.product(name: "AvatarBatchCore", package: "avatar-batch")],
                          swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
        // One worker's socket bytes per input, line by line through the worker protocol's parser.
        .executableTarget(name: "fuzz-worker", dependencies: [.product(name: "AvatarBatchCore", package: "avatar-batch")],
                          swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
    ],
    swiftLanguageModes: [.v6]
)

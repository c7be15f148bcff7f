import Foundation
@testable import Manifest
import TestSupport
import Testing

@Suite struct EmbeddedRenderersTests {
    /// The profiles built into the binary are the files in renderers/: after changing one, run
    /// scripts/embed-renderers.sh, or this fails.
    @Test func theEmbeddedFilesAreTheShippedOnes() throws {
        #expect(ProfileLoader.builtinNames == ["liveavatar", "preview", "synthetic-dit"])
        for (name, text) in BuiltinRenderers.files {
            let disk = try String(contentsOfFile: PackagePaths.renderers + "/" + name, encoding: .utf8)
            #expect(text + "\n" == disk, "\(name) differs from renderers/\(name): run scripts/embed-renderers.sh")
        }
    }
}

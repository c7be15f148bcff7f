import Foundation
import Manifest
import TestSupport
import Testing

/// Hostile inputs kept from fuzzing and from the known YAML attacks, each with the one error it must give.
@Suite struct CorpusTests {
    static let cases: [(String, String)] = [
        ("alias-bomb.yaml", "3:25: error: document expands to more than 2000000 values (an alias bomb?); use fewer nested aliases"),
        ("deep-nesting.yaml", "2:264: error: nesting deeper than 64 levels; flatten the document"),
        ("list-key.yaml", "2:3: error: mapping keys must be plain words, not a list; write the key as a string"),
        ("merge-non-mapping.yaml", "4:8: error: a << merge key needs a mapping or a list of mappings; merge an anchored mapping: <<: *defaults"),
        ("nul-byte.yaml", "2:18: error: invalid YAML: control characters are not allowed; remove control characters from the file"),
        // A language tag is no way in: the value is read as plain data, and here it is the wrong type.
        ("python-tag.yaml", "2:11: error: renderer must be a string, not a list; write renderer: followed by text (quote it if it looks like a number or starts with a symbol)"),
    ]

    @Test(arguments: cases)
    func eachHostileInputGivesItsError(_ name: String, _ expected: String) {
        let path = PackagePaths.root + "/Tests/ManifestTests/Corpus/" + name
        var options = LoadOptions(rendererSearchPath: [PackagePaths.renderers])
        options.requireEnvironment = false
        let result = ManifestLoader.load(path: path, options: options)
        #expect(result.manifest == nil)
        #expect(result.diagnostics.map(\.description) == [path + ":" + expected])
    }
}

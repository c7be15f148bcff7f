import Foundation
import TestSupport
import Testing

/// Every JSON document the CLI prints is checked against its published schema (docs/schemas/), on real output:
/// CI users parse these.
@Suite(.serialized) struct SchemaTests {
    static let folder = URL(fileURLWithPath: PackagePaths.root + "/docs/schemas")

    func conforms(_ text: String, to schema: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        var v = SchemaValidator(folder: SchemaTests.folder)
        let errors = try v.errors(try JSONValue.parse(Data(text.utf8)), against: schema)
        #expect(errors.isEmpty, "\(schema): \(errors.prefix(10).joined(separator: "\n"))", sourceLocation: sourceLocation)
    }

    @Test func statusReportPlanAndValidateOutputsConformToTheirSchemas() throws {
        // Successes, a crash that gives up, an OOM walked down the ladder: every optional field gets a value somewhere.
        let b = Batch(clips: [("a", "ok"), ("b", "ok"), ("broken", "crash"), ("big", "oom")],
                      retry: "{max_attempts: 2, on_oom: [isolate, {online_decode: true}]}")
        let r = try b.run(["--report", b.dir.path + "/reports"])
        #expect(r.status == 1, "\(r.stderr)")
        try conforms(try CLI.run(["status", b.manifest, "--json"]).stdout, to: "status.schema.json")
        let summary = try CLI.run(["status", b.manifest, "--json", "--summary"]).stdout
        try conforms(summary, to: "status.schema.json")
        #expect(!summary.contains("\"jobs\""))
        try conforms(try CLI.run(["report", b.manifest]).stdout, to: "report.schema.json")
        try conforms(try String(contentsOfFile: b.dir.path + "/reports/report.json", encoding: .utf8), to: "report.schema.json")
        let plan = try CLI.run(["plan", b.manifest, "--json", "--explain"])
        #expect(plan.status == 0, "\(plan.stderr)")
        try conforms(plan.stdout, to: "plan.schema.json")
        // A clip no GPU can hold: the plan lists it as unplaceable (exit 2).
        let tooBig = try CLI.run(["plan", b.manifest, "--json", "--gpus", "1x8GB"])
        #expect(tooBig.status == 2)
        try conforms(tooBig.stdout, to: "plan.schema.json")
        #expect(tooBig.stdout.contains("\"unplaceable\""))
        let valid = try CLI.run(["validate", b.manifest, "--json"])
        #expect(valid.status == 0, "\(valid.stderr)")
        try conforms(valid.stdout, to: "validate.schema.json")
        try b.editManifest(("size: \"384*256\"", "size: \"385*256\""))
        let invalid = try CLI.run(["validate", b.manifest, "--json"])
        #expect(invalid.status == 2)
        try conforms(invalid.stdout, to: "validate.schema.json")
        #expect(invalid.stdout.contains("\"diagnostics\""))
    }

    @Test func theValidatorRejectsWhatTheSchemaForbids() throws {
        // The check above could not fail if the validator accepted everything: each kind of break is caught.
        var v = SchemaValidator(folder: SchemaTests.folder)
        let good = #"{"workers": [], "store": "s", "running_orchestrator": null, "counts": {"pending": 0, "running": 0, "succeeded": 1, "failed": 0, "interrupted": 0, "cancelled": 0}}"#
        #expect(try v.errors(try JSONValue.parse(Data(good.utf8)), against: "status.schema.json").isEmpty)
        let broken = [
            #"{"workers": [], "store": "s", "counts": {"pending": 0, "running": 0, "succeeded": 1, "failed": 0, "interrupted": 0, "cancelled": 0}}"#: "running_orchestrator is missing",
            #"{"workers": [], "store": 3, "running_orchestrator": null, "counts": {"pending": 0, "running": 0, "succeeded": 1, "failed": 0, "interrupted": 0, "cancelled": 0}}"#: "is not string",
            #"{"workers": [], "store": "s", "extra": 1, "running_orchestrator": null, "counts": {"pending": 0, "running": 0, "succeeded": 1, "failed": 0, "interrupted": 0, "cancelled": 0}}"#: "extra is not allowed",
            #"{"workers": [], "store": "s", "running_orchestrator": null, "counts": {"pending": -1, "running": 0, "succeeded": 1, "failed": 0, "interrupted": 0, "cancelled": 0}}"#: "below the minimum",
            #"{"workers": [], "store": "s", "running_orchestrator": null, "counts": {"pending": 0, "running": 0, "succeeded": 1, "failed": 0, "interrupted": 0, "cancelled": 0}, "jobs": [{"id": "x", "state": "lost"}]}"#: "not one of the allowed values",
            #"{"workers": [{"id": "1.1", "host": "h", "load_settings": "", "state": "sleeping", "served": 0, "started_at": 1}], "store": "s", "running_orchestrator": null, "counts": {"pending": 0, "running": 0, "succeeded": 1, "failed": 0, "interrupted": 0, "cancelled": 0}}"#: "not one of the allowed values",
            #"{"store": "s", "running_orchestrator": null, "counts": {"pending": 0, "running": 0, "succeeded": 1, "failed": 0, "interrupted": 0, "cancelled": 0}}"#: "workers is missing",
        ]
        for (doc, why) in broken {
            let errors = try v.errors(try JSONValue.parse(Data(doc.utf8)), against: "status.schema.json")
            #expect(errors.contains { $0.contains(why) }, "\(why): \(errors)")
        }
    }

    @Test func reportsAreNamedAfterTheManifestAndFindItsOutputsWithState() throws {
        // `report` used to name the batch after the file (m) and guess output_dir two levels above the store.
        let b = Batch(clips: [("a", "ok")])
        #expect(try b.run().status == 0)
        let named = try CLI.run(["report", b.manifest]).stdout
        #expect(named.contains("\"name\" : \"t\""), "\(named.prefix(300))")
        // With --state alone, the manifest the store's last run read gives the name and the outputs.
        let junit = b.dir.path + "/j.xml", html = b.dir.path + "/r.html"
        let r = try CLI.run(["report", "--state", b.store, "--junit", junit, "--html", html])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try String(contentsOfFile: junit, encoding: .utf8).contains("<testsuite name=\"t\""))
        #expect(!r.stderr.contains("not at hand"))
    }
}

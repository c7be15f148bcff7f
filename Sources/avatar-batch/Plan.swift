import ArgumentParser
import Checkpoint
import Executors
import Foundation
import Manifest
import Reports
import Scheduler

struct Plan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict memory and time, and simulate how the batch packs onto the GPUs.",
        discussion: "Nothing is run. Exit status 2 when a clip fits no GPU at any setting.")

    @OptionGroup var options: ManifestOptions

    @Option(help: "Placement strategy: \(Strategy.table.keys.sorted().joined(separator: ", ")).")
    var strategy: String?

    @Option(help: "At most this many jobs on one GPU (default: the renderer's max_jobs_per_gpu).")
    var maxJobsPerGPU: Int?

    @Flag(help: "Say why each job waited.")
    var explain = false

    @Flag(help: "Print the plan as JSON.")
    var json = false

    @Option(help: ArgumentHelp("The history of earlier batches and calibrations to plan from (default: as run uses it; read only).", valueName: "PATH"))
    var history: String?

    @Flag(help: "Plan from the profile alone, without the history.")
    var noHistory = false

    @Option(help: ArgumentHelp("Plan for warm workers (auto: when the renderer's profile has a worker: section) or one process per job (off), as run --workers does.", valueName: "auto|off"))
    var workers: String = "auto"

    func run() async throws {
        var lo = try options.loadOptions(requireEnvironment: false)
        lo.checkFiles = !options.noProbe || lo.probe != nil
        let manifest = try loadOrExit(options.manifest, lo, json: json)
        let found: [GPU]
        do { found = try await GPUDiscovery.forBatch(manifest) } catch { throw fail("\(error)") }
        let strategy: Scheduler.Strategy
        do { strategy = try Scheduler.Strategy.named(self.strategy ?? manifest.strategy) } catch { throw fail("\(error)") }
        guard workers == "auto" || workers == "off" else { throw fail("--workers must be auto or off, not \(workers)") }
        let warm = workers == "auto" ? manifest.renderer.worker : nil
        let knowledge = Knowledge(profile: manifest.renderer, gpus: found, historyPath: noHistory ? nil : (history ?? History.defaultPath()),
                                  batch: manifest.name, readOnly: true,
                                  loadSettings: Knowledge.commonLoadSettings(manifest.renderer, manifest.clips.map(\.settings)), warm: warm != nil)
        for w in knowledge.warnings { FileHandle.standardError.write(Data("warning: \(w)\n".utf8)) }
        // Cards of another model than the predictions' render at their own speed, where it is known.
        let gpus = knowledge.scaled(found)
        var predictor = knowledge.predictor()
        // Warm requests pay only the part of the start-up that is not the load; the loads are added per worker below.
        if warm != nil { predictor.warm = true }
        let planner = Planner(predictor: predictor, strategy: strategy, maxJobsPerGPU: maxJobsPerGPU)
        var plan = planner.plan(manifest.clips.map { PlanJob(id: $0.id, settings: $0.settings, priority: $0.priority, gpuModel: $0.gpuModel, location: $0.location) }, gpus: gpus, explain: explain)
        var warmPlan: WarmPlan?
        let settings = Dictionary(manifest.clips.map { ($0.id, $0.settings) }, uniquingKeysWith: { a, _ in a })
        if warm != nil {
            let r = plan.warmed(load: knowledge.expectedLoad, key: { id in settings[id].map(manifest.renderer.workerKey) ?? "" },
                                solo: { id in settings[id].map { predictor.estimate($0).seconds } ?? 0 },
                                unshared: { id in settings[id].map { predictor.estimate($0).unsharedSeconds } ?? 0 }, sharing: planner.dispatcher.placer.sharing)
            plan = r.0
            warmPlan = r.1
        }
        if json {
            var doc = PlanDocument(plan)
            doc.warm = warmPlan.map { PlanDocument.WarmEntry(workers: $0.workers, loadSeconds: $0.loadSeconds,
                                                             loadSecondsBySettings: $0.loadsBySettings.isEmpty ? nil : $0.loadsBySettings) }
            doc.predictionBasis = knowledge.basis
            for i in doc.placements.indices { doc.placements[i].predictedFrom = settings[doc.placements[i].job].map { predictor.provenance($0) } }
            try JSONOutput.print(doc)
        } else {
            print(PlanPrinter.text(plan, manifest: manifest, explain: explain, warm: warmPlan, predictor: predictor, basis: knowledge.basis))
        }
        if !plan.unplaceable.isEmpty { throw ExitCode(2) }
    }
}

/// Plans as text (JSON: `PlanDocument`).
enum PlanPrinter {
    static func text(_ plan: Scheduler.Plan, manifest: Manifest, explain: Bool, warm: WarmPlan? = nil, predictor: Predictor? = nil, basis: String? = nil) -> String {
        var out: [String] = []
        let d = ProgressReporter.duration
        out.append("plan for \(manifest.name): \(manifest.clips.count) clips, renderer \(manifest.renderer.name), strategy \(plan.strategy), \(plan.gpus.count) GPU(s)")
        if let basis { out.append("predictions: \(basis)") }
        // Looked up per placement below: one dictionary, not a scan of every clip for each of them.
        let clips = explain ? Dictionary(manifest.clips.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a }) : [:]
        for g in plan.gpus {
            let runs = plan.runs.filter { $0.gpu == g.index }
            let speed = g.timeScale == 1 ? "" : String(format: ", renders x%.2f", g.timeScale)
            out.append(String(format: "GPU %d  %@  %.1f GB  (%d jobs, busy until %@%@)", g.index, g.model, g.memoryGB, runs.count, d(runs.map(\.endS).max() ?? 0), speed))
            for r in runs {
                var extra = plan.estimates[r.jobID]?.extrapolated == true ? "  (extrapolated)" : ""
                if explain, let e = plan.estimates[r.jobID] {
                    // The frame the renderer will generate (a fit-area renderer follows the image), and the host RAM.
                    if manifest.renderer.framing != .exact, let clip = clips[r.jobID] {
                        let f = manifest.renderer.renderedFrame(clip.settings)
                        extra += "  frame \(f.width)x\(f.height)"
                    }
                    if e.hostRAMGB > 0 { extra += String(format: "  host RAM %.0f GB", e.hostRAMGB) }
                    if let predictor, let clip = clips[r.jobID] {
                        extra += "  from: \(predictor.provenance(clip.settings))"
                    }
                }
                out.append(String(format: "  %@ -> %@  %@  %.1f GB%@", d(r.startS), d(r.endS), r.jobID, r.memoryGB, extra))
            }
        }
        if let warm {
            let loads = warm.loadsBySettings.isEmpty ? d(warm.loadSeconds)
                : warm.loadsBySettings.sorted { $0.key < $1.key }.map { "\(d($0.value)) for \($0.key)" }.joined(separator: ", ")
            out.append("warm workers: \(warm.workers) worker(s), each loading once (~\(loads)) before its first clip; "
                + "clips pay no start-up (run --workers off for one process per clip)")
        }
        out.append(String(format: "makespan %@, lower bound %@, ratio %.2f", d(plan.makespanS), d(plan.lowerBoundS), plan.ratio))
        if !plan.unplaceable.isEmpty {
            out.append("clips that fit no GPU:")
            for u in plan.unplaceable {
                out.append("  \(u.location): error: clip \(u.jobID) fits no GPU: \(u.reason)" + (u.suggestion.map { "; \($0)" } ?? ""))
            }
        }
        if explain && !plan.waits.isEmpty {
            out.append("why jobs waited (first reason):")
            for (id, why) in plan.waits.sorted(by: { $0.key < $1.key }) { out.append("  \(id): \(why)") }
        }
        return out.joined(separator: "\n")
    }
}

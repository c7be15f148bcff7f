import Checkpoint
import Foundation
import Manifest
import Subprocess

/// The one-file HTML report: totals, a timeline with one lane per GPU, predicted against observed figures,
/// every failure with its ladder and log tail, and a contact sheet. No network, no script: it works from a
/// file: URL, and hovering an attempt shows its details (SVG titles).
public enum ReportHTML {
    static let colors: [String: String] = [
        "succeeded": "#2f9e44", "oom": "#e8590c", "timeout": "#9c36b5", "crashed": "#c92a2a", "killed": "#862e9c",
        "invalid-output": "#f59f00", "interrupted": "#868e96", "cancelled": "#adb5bd", "running": "#1c7ed6",
    ]

    /// Writes the report for `report` to `path`; thumbnails come from the outputs in `outputDir` (ffmpeg), and
    /// without one the contact sheet names the clips only.
    public static func write(_ report: BatchReport, outputDir given: String?, to path: String) async throws {
        let dir = (path as NSString).deletingLastPathComponent
        var thumbs: [String: String] = [:]
        let done = given == nil ? [] : report.jobs.filter { $0.state == .succeeded }
        let outputDir = given ?? "."
        try await withThrowingTaskGroup(of: (String, String?).self) { group in
            var next = 0
            let width = max(2, ProcessInfo.processInfo.activeProcessorCount)
            func add() {
                guard next < done.count else { return }
                let j = done[next]
                next += 1
                group.addTask { (j.id, await thumbnail(outputDir + "/" + j.output)) }
            }
            for _ in 0..<width { add() }
            while let (id, data) = try await group.next() {
                if let data { thumbs[id] = data }
                add()
            }
        }
        let html = render(report, thumbnails: thumbs, link: { relativePath(from: dir, to: outputDir + "/" + $0.output) })
        try html.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// A 160-pixel-wide JPEG of the video at 1 s (its first frame when it is shorter), as a data: URL; nil
    /// without ffmpeg or a decodable frame.
    static func thumbnail(_ video: String) async -> String? {
        for seek in [["-ss", "1"], []] {
            let result = try? await Subprocess.run(
                .name("ffmpeg"),
                arguments: Arguments(["-nostdin", "-loglevel", "error"] + seek + ["-i", video, "-frames:v", "1", "-vf", "scale=160:-2",
                                                                               "-f", "image2pipe", "-vcodec", "mjpeg", "-"]),
                output: .bytes(limit: 4 << 20), error: .discarded)
            if let result, result.terminationStatus.isSuccess, !result.standardOutput.isEmpty {
                return "data:image/jpeg;base64," + Data(result.standardOutput).base64EncodedString()
            }
        }
        return nil
    }

    static func relativePath(from dir: String, to file: String) -> String {
        let a = URL(fileURLWithPath: dir).standardizedFileURL.pathComponents
        let b = URL(fileURLWithPath: file).standardizedFileURL.pathComponents
        var i = 0
        while i < a.count && i < b.count && a[i] == b[i] { i += 1 }
        return (Array(repeating: "..", count: a.count - i) + b[i...]).map { $0.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? $0 }.joined(separator: "/")
    }

    static func esc(_ s: String) -> String { BatchReport.markupEscape(s) }

    static func fmt(_ v: Double?, _ unit: String, digits: Int = 1) -> String {
        guard let v else { return "–" }
        return String(format: "%.\(digits)f%@", v, unit)
    }

    /// The page as text.
    public static func render(_ report: BatchReport, thumbnails: [String: String], link: (JobRecord) -> String) -> String {
        let attempts = report.jobs.flatMap { report.attempts[$0.id] ?? [] }
        let t0 = (attempts.map(\.startedAt) + report.workers.map(\.startedAt)).min() ?? 0
        let now = Date().timeIntervalSince1970
        let t1 = max((attempts.map { $0.endedAt ?? now } + report.workers.map { $0.endedAt ?? now }).max() ?? t0, t0 + 1)
        let span = t1 - t0
        var h = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>avatar-batch report: \(esc(report.name))</title>
            <style>
            body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #212529; max-width: 1400px; }
            h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
            .totals span { display: inline-block; margin-right: 1.2rem; }
            .legend span { display: inline-block; margin-right: .8rem; } .legend i { display: inline-block; width: .8rem; height: .8rem; margin-right: .25rem; vertical-align: -1px; }
            svg.timeline { width: 100%; height: auto; border: 1px solid #dee2e6; background: #fff; }
            table { border-collapse: collapse; font-size: 13px; } td, th { padding: 2px 8px; border-bottom: 1px solid #eee; text-align: right; } td:first-child, th:first-child { text-align: left; }
            .failure { border-left: 4px solid #c92a2a; padding: .2rem .8rem; margin: .8rem 0; }
            pre { background: #f8f9fa; padding: .5rem; overflow-x: auto; max-height: 14rem; font-size: 12px; }
            .sheet { display: flex; flex-wrap: wrap; gap: 8px; } .sheet figure { margin: 0; width: 160px; font-size: 12px; overflow-wrap: anywhere; }
            .sheet img { width: 160px; display: block; background: #000; } .over { color: #c92a2a; }
            </style></head><body>
            <h1>avatar-batch report: \(esc(report.name))</h1>
            <p class="totals">
            """
        for s in JobState.allCases { h += "<span><b>\(report.counts[s] ?? 0)</b> \(s.rawValue)</span>" }
        h += "<span>wall time <b>\(esc(durationText(report.wallSeconds)))</b></span><span>\(report.runs.count) run(s)</span></p>\n"

        // Timeline: one lane per GPU (per node for Slurm attempts, whose GPU is Slurm's choice); co-located attempts
        // stack in sub-rows.
        func laneKey(_ a: AttemptRecord) -> (order: Int, label: String, id: String) {
            if let g = a.gpu { return (g, "GPU \(g)", String(g)) }
            return (Int.max, a.slurmJobID != nil ? "Slurm \(a.host)" : a.host, "slurm-" + a.host)
        }
        var keyed = Dictionary(attempts.map { (laneKey($0).id, laneKey($0)) }, uniquingKeysWith: { a, _ in a })
        for w in report.workers { if let g = w.gpu { keyed[String(g)] = (g, "GPU \(g)", String(g)) } }
        let keys = keyed.values.sorted { ($0.order, $0.label) < ($1.order, $1.label) }
        let width = 1200.0, left = 70.0, row = 14.0
        var lanes: [(gpu: String, label: String, rows: [[AttemptRecord]], workers: [[WorkerRecord]])] = []
        for k in keys {
            var rows: [[AttemptRecord]] = []
            for a in attempts.filter({ laneKey($0).id == k.id }).sorted(by: { $0.startedAt < $1.startedAt }) {
                if let i = rows.firstIndex(where: { ($0.last?.endedAt ?? now) <= a.startedAt }) { rows[i].append(a) } else { rows.append([a]) }
            }
            // Warm workers on this GPU, in rows of their own above its attempts: alive from start to end, loading
            // until ready (the darker part).
            var wrows: [[WorkerRecord]] = []
            for w in report.workers.filter({ $0.gpu.map(String.init) == k.id }) {
                if let i = wrows.firstIndex(where: { ($0.last?.endedAt ?? now) <= w.startedAt }) { wrows[i].append(w) } else { wrows.append([w]) }
            }
            lanes.append((k.id, k.label, rows, wrows))
        }
        let height = lanes.reduce(20.0) { $0 + Double(max($1.rows.count + $1.workers.count, 1)) * row + 8 }
        h += "<h2>Timeline</h2><p class=\"legend\">"
        for (k, c) in colors.sorted(by: { $0.key < $1.key }) { h += "<span><i style=\"background:\(c)\"></i>\(k)</span>" }
        if !report.workers.isEmpty {
            h += "<span><i style=\"background:#868e96\"></i>worker loading</span><span><i style=\"background:#ced4da\"></i>worker alive</span>"
        }
        h += "</p>\n<svg class=\"timeline\" viewBox=\"0 0 \(Int(width + left + 10)) \(Int(height))\" role=\"img\" aria-label=\"attempts per GPU over time\">\n"
        for tick in 0...5 {
            let x = left + width * Double(tick) / 5
            h += "<line x1=\"\(x)\" y1=\"0\" x2=\"\(x)\" y2=\"\(height - 14)\" stroke=\"#e9ecef\"/><text x=\"\(x)\" y=\"\(height - 2)\" font-size=\"10\" text-anchor=\"middle\">\(esc(durationText(span * Double(tick) / 5)))</text>\n"
        }
        var y = 4.0
        for lane in lanes {
            let laneHeight = Double(max(lane.rows.count + lane.workers.count, 1)) * row
            h += "<g class=\"lane\" data-gpu=\"\(lane.gpu)\"><text x=\"4\" y=\"\(y + laneHeight / 2 + 4)\" font-size=\"11\">\(esc(lane.label))</text>\n"
            for (r, inRow) in lane.workers.enumerated() {
                for w in inRow {
                    let x = left + (w.startedAt - t0) / span * width
                    let end = w.endedAt ?? now
                    let ready = min(w.readyAt ?? end, end)
                    let load = max((ready - w.startedAt) / span * width, 1)
                    let full = max((end - w.startedAt) / span * width, 1.5)
                    let tip = "worker \(w.id) (pid \(w.pid.map(String.init) ?? "?"))\(w.loadSettings.isEmpty ? "" : " [\(w.loadSettings)]"): "
                        + "loaded in \(w.readyAt.map { durationText($0 - w.startedAt) } ?? "never"), served \(w.served) clip(s)"
                        + (w.residentGB.map { String(format: ", %.1f GB resident", $0) } ?? "") + (w.endNote.map { "\n" + $0 } ?? "")
                    let yy = String(format: "%.1f", y + Double(r) * row)
                    h += "<g class=\"worker\"><title>\(esc(tip))</title><rect x=\"\(String(format: "%.1f", x))\" y=\"\(yy)\" width=\"\(String(format: "%.1f", full))\" height=\"\(row - 4)\" fill=\"#ced4da\"/>"
                        + "<rect class=\"load\" x=\"\(String(format: "%.1f", x))\" y=\"\(yy)\" width=\"\(String(format: "%.1f", load))\" height=\"\(row - 4)\" fill=\"#868e96\"/></g>\n"
                }
            }
            for (r0, attemptsInRow) in lane.rows.enumerated() {
                let r = r0 + lane.workers.count
                for a in attemptsInRow {
                    let kind = a.classification?.rawValue ?? "running"
                    let x = left + (a.startedAt - t0) / span * width
                    let w = max(((a.endedAt ?? now) - a.startedAt) / span * width, 1.5)
                    let tip = "\(a.jobID) attempt \(a.number): \(kind)\(a.change.isEmpty ? "" : " [\(a.change)]")\n\(lane.label)\(a.slurmJobID.map { ", Slurm job \($0)" } ?? ""), \(durationText(a.seconds ?? ((a.endedAt ?? now) - a.startedAt)))\(a.peakGB.map { String(format: ", peak %.1f GB", $0) } ?? "")\(a.note.map { "\n" + $0 } ?? "")"
                    h += "<rect class=\"attempt \(kind)\" x=\"\(String(format: "%.1f", x))\" y=\"\(String(format: "%.1f", y + Double(r) * row))\" width=\"\(String(format: "%.1f", w))\" height=\"\(row - 2)\" fill=\"\(colors[kind] ?? "#495057")\"><title>\(esc(tip))</title></rect>\n"
                }
            }
            h += "</g>\n"
            y += laneHeight + 8
        }
        h += "</svg>\n"

        // Predicted against observed.
        h += "<h2>Predicted and observed</h2><table><tr><th>clip</th><th>state</th><th>predicted GB</th><th>observed peak GB</th><th>predicted time</th><th>observed time</th><th>attempts</th></tr>\n"
        for j in report.jobs {
            let over = (j.observedPeakGB ?? 0) > (j.predictedGB ?? .infinity)
            h += "<tr><td>\(esc(j.id))</td><td>\(j.state.rawValue)</td><td>\(fmt(j.predictedGB, ""))</td><td class=\"\(over ? "over" : "")\">\(fmt(j.observedPeakGB, ""))</td>"
            h += "<td>\(j.predictedSeconds.map { esc(durationText($0)) } ?? "–")</td><td>\(j.observedSeconds.map { esc(durationText($0)) } ?? "–")</td><td>\((report.attempts[j.id] ?? []).count)</td></tr>\n"
        }
        h += "</table>\n"

        // Failures.
        let failed = report.jobs.filter { $0.state == .failed }
        h += "<h2>Failures (\(failed.count))</h2>\n"
        for j in failed {
            let tries = report.attempts[j.id] ?? []
            h += "<div class=\"failure\"><b>\(esc(j.id))</b>: \(esc(tries.last?.classification?.rawValue ?? "failed")) — \(esc(j.reason ?? ""))<ol>"
            for a in tries { h += "<li>\(esc(a.classification?.rawValue ?? "open"))\(a.change.isEmpty ? "" : " [\(esc(a.change))]")\(a.note.map { ": " + esc($0) } ?? "")</li>" }
            h += "</ol>"
            if let log = tries.last?.logPath { h += "<div>log: <code>\(esc(log))</code></div>" }
            if let tail = tries.last?.stderrTail, !tail.isEmpty { h += "<pre>\(esc(tail))</pre>" }
            h += "</div>\n"
        }

        // Contact sheet.
        h += "<h2>Contact sheet</h2><div class=\"sheet\">\n"
        for j in report.jobs where j.state == .succeeded {
            let img = thumbnails[j.id].map { "<img class=\"thumb\" alt=\"\(esc(j.id))\" loading=\"lazy\" src=\"\($0)\">" } ?? "<div>(no thumbnail)</div>"
            h += "<figure><a href=\"\(esc(link(j)))\">\(img)</a><figcaption>\(esc(j.id))</figcaption></figure>\n"
        }
        h += "</div>\n<p><small>generated by avatar-batch</small></p></body></html>\n"
        return h
    }
}

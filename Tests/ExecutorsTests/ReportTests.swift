import Checkpoint
import Foundation
import TestSupport
import Testing

/// Runs a program to completion, returning its exit status and both outputs.
func runProgram(_ path: String, _ args: [String]) throws -> (Int32, String, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

func which(_ name: String) -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
        return "\(dir)/\(name)"
    }
    return nil
}

@Suite(.serialized) struct ReportTests {
    /// A batch with real videos (ffmpeg): four clips succeed, one crashes twice, one runs out of memory twice
    /// (as written, then alone) and gives up at max_attempts 2; reported after the run.
    func renderedBatch() throws -> (Batch, String) {
        let b = Batch(clips: [("a", "ok"), ("b", "ok"), ("c", "ok"), ("d", "ok"), ("broken", "crash"), ("big", "oom")],
                      check: "ffprobe", ffmpeg: true, retry: "{max_attempts: 2, on_oom: [isolate, {online_decode: true}]}", gpus: "2x80GB")
        try b.editManifest(("[--mode, ok]", "[--mode, ok, --sleep, \"0.6\"]"))
        let r = try b.run(["--report", b.dir.path + "/reports"])
        #expect(r.status == 1, "\(r.stderr)")
        return (b, b.dir.path + "/reports/report.html")
    }

    @Test func htmlReportRendersInAHeadlessBrowser() throws {
        let (b, html) = try renderedBatch()
        let page = try String(contentsOfFile: html, encoding: .utf8)
        // Self-contained: no script, nothing fetched from a network.
        #expect(!page.contains("<script"))
        #expect(!page.contains("http://") && !page.contains("https://"))
        #expect(page.components(separatedBy: "<g class=\"lane\"").count - 1 == 2)
        #expect(page.components(separatedBy: "<img class=\"thumb\"").count - 1 == 4)
        #expect(page.contains("<b>broken</b>: crashed"))
        #expect(page.contains("<b>big</b>: oom"))
        #expect(page.contains("rect class=\"attempt oom\""))
        // Links to the videos resolve from the report's folder.
        #expect(page.contains("href=\"../out/a.mp4\""))
        #expect(FileManager.default.fileExists(atPath: b.dir.path + "/out/a.mp4"))

        let chromium = try #require(which("chromium") ?? which("chromium-browser"), "chromium is needed (scripts/deps.sh installs it)")
        let shot = b.dir.path + "/shot.png"
        let (status, _, log) = try runProgram(chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr",
                                                         "--v=0", "--window-size=1280,900", "--screenshot=\(shot)", "file://" + html])
        #expect(status == 0, "\(log)")
        // The page logs nothing to the console (no errors, no blocked loads).
        #expect(!log.split(separator: "\n").contains { $0.contains(":CONSOLE") }, "\(log)")
        // The timeline is drawn: count pixels of the "succeeded" green (#2f9e44) in the screenshot. The legend's
        // swatch alone is about 150 pixels; four bars of ~0.6 s each across the lanes are far more.
        let (rc, _, _) = try runProgram(which("ffmpeg")!, ["-nostdin", "-loglevel", "error", "-y", "-i", shot, "-f", "rawvideo", "-pix_fmt", "rgb24",
                                                            b.dir.path + "/shot.rgb"])
        #expect(rc == 0)
        let rgb = [UInt8](try Data(contentsOf: URL(fileURLWithPath: b.dir.path + "/shot.rgb")))
        var green = 0
        var i = 0
        while i + 2 < rgb.count {
            if abs(Int(rgb[i]) - 0x2f) < 12 && abs(Int(rgb[i + 1]) - 0x9e) < 12 && abs(Int(rgb[i + 2]) - 0x44) < 12 { green += 1 }
            i += 3
        }
        #expect(green > 600, "only \(green) timeline pixels")
    }

    @Test func junitValidatesAgainstTheSchema() throws {
        let (b, _) = try renderedBatch()
        let xmllint = try #require(which("xmllint"), "xmllint is needed (scripts/deps.sh installs libxml2-utils)")
        let (status, _, err) = try runProgram(xmllint, ["--noout", "--schema", PackagePaths.root + "/docs/junit.xsd", b.dir.path + "/reports/junit.xml"])
        #expect(status == 0, "\(err)")
        #expect(err.contains("validates"))
        // The schema is strict where Jenkins is: the attribute its junit-10 schema rejects on <testsuites> fails here too.
        let xml = try String(contentsOfFile: b.dir.path + "/reports/junit.xml", encoding: .utf8)
        let bad = b.dir.path + "/reports/bad.xml"
        try xml.replacingOccurrences(of: "<testsuites name=", with: "<testsuites skipped=\"0\" name=").write(toFile: bad, atomically: true, encoding: .utf8)
        let (rejected, _, _) = try runProgram(xmllint, ["--noout", "--schema", PackagePaths.root + "/docs/junit.xsd", bad])
        #expect(rejected != 0)
    }
}

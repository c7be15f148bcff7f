import Manifest
import Testing

@Suite struct ArgvTemplateTests {
    @Test func conditionalsAndExtraArgs() {
        let t = ["run", "--size", "{size}", "{online_decode:--enable_online_decode}", "{fp8:--fp8}", "--x={width}x{height}", "{extra_args}"]
        let argv = ArgvTemplate.expand(t, values: ["size": "688*368", "width": "688", "height": "368"], flags: ["online_decode": true, "fp8": false],
                                       extraArgs: ["--a", "b c"])
        #expect(argv == ["run", "--size", "688*368", "--enable_online_decode", "--x=688x368", "--a", "b c"])
    }

    @Test func hostileValuesStayOneArgument() {
        let prompt = "it's \"$(rm -rf /)\" `id`; echo x\n--flag ünïcødé"
        let argv = ArgvTemplate.expand(["r", "--prompt", "{prompt}"], values: ["prompt": prompt], flags: [:], extraArgs: [])
        #expect(argv == ["r", "--prompt", prompt])
    }

    @Test func unknownPlaceholdersAreReported() {
        let problems = ArgvTemplate.check(["r", "{imgae}", "{size:--big}", "x{extra_args}"])
        #expect(problems.map { "\($0.message); \($0.fix)" } == [
            "unknown placeholder {imgae}; did you mean {image}?",
            "\"{size:...}\" is not a boolean setting; conditionals take one of fp8, offload_model, online_decode",
            "{extra_args} must stand alone in its entry; make \"{extra_args}\" a list entry of its own",
        ])
    }

    @Test func literalBraces() {
        #expect(ArgvTemplate.expand(["{{x}}"], values: [:], flags: [:], extraArgs: []) == ["{x}"])
    }
}

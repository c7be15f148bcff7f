"""Records the argument parser of Live Avatar's single-GPU entry script as a JSON table (a test fixture).

    python3 parser_table.py PATH/TO/minimal_inference/s2v_streaming_interact.py COMMIT > parser-COMMIT.json

It reads the script's `parser.add_argument(...)` calls with Python's ast module (nothing is imported or run) and
writes, per option: its name, action, type, choices and default as written, and the upstream date that added it
where the facts sheet records one. The contract test (Tests/ExecutorsTests/LiveAvatarContractTests.swift) rebuilds
an argparse parser from this table and feeds it avatar-batch's exact argv.
"""
import ast
import json
import sys

# Upstream dates of options added after the first single-GPU release (../shared/docs/liveavatar-facts.md).
ADDED = {"--enable_online_decode": "2025-12-12", "--fp8": "2026-01-14"}


def literal(node):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return ast.unparse(node)


def config_keys(script):
    """The keys of the dicts that choices= names by expression (SIZE_CONFIGS, WAN_CONFIGS), read from the configs."""
    import os
    configs = os.path.join(os.path.dirname(script), "..", "liveavatar/models/wan/wan_2_2/configs/__init__.py")
    keys = {}
    for node in ast.walk(ast.parse(open(configs).read())):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    keys["list(%s.keys())" % t.id] = [k.value for k in node.value.keys if isinstance(k, ast.Constant)]
    return keys


def main(path, commit):
    tree = ast.parse(open(path).read())
    keys = config_keys(path)
    options = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            names = [a.value for a in node.args if isinstance(a, ast.Constant)]
            kw = {k.arg: k.value for k in node.keywords}
            opt = {"names": names, "action": literal(kw["action"]) if "action" in kw else "store"}
            if "type" in kw:
                opt["type"] = ast.unparse(kw["type"])
            if "choices" in kw:
                c = literal(kw["choices"])
                opt["choices"] = c if isinstance(c, list) else keys.get(c)
                if not isinstance(c, list):
                    opt["choices_from"] = c
            if "default" in kw:
                opt["default"] = literal(kw["default"])
            if names[0] in ADDED:
                opt["added"] = ADDED[names[0]]
            options.append(opt)
    json.dump({"source": "Alibaba-Quark/LiveAvatar:minimal_inference/s2v_streaming_interact.py", "commit": commit,
               "options": sorted(options, key=lambda o: o["names"][0])}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""A stand-in for Live Avatar's minimal_inference/s2v_streaming_interact.py, for the contract tests (no GPU).

It rebuilds the real script's argument parser from a recorded table (FAKE_LIVEAVATAR_TABLE, made by
bench/liveavatar/parser_table.py from the real source) and parses its argv with Python's own argparse, so an argv
the real script would reject (an unknown flag, a value that looks like an option, a bad choice) is rejected here with
the same exit status 2. Then it checks what the real code needs of its arguments and environment, with the failure
the real code gives:
- the LoRA path, the checkpoint folder and the training config must be absolute and exist (a relative LoRA is a Hub id
  resolved against ckpt/LiveAvatar in the working directory, and fails offline);
- --audio is split on '+' into several files, each of which must exist;
- --offload_model False fails at the first VAE decode (a device mismatch), after the denoising.
It records the parsed arguments as one JSON line in FAKE_LIVEAVATAR_LEDGER, then writes the video as the real code
does: the frames to --save_file, then the audio muxed into `<base>_temp.mp4`, moved over --save_file. A prompt that
contains HANG makes it stop forever after the temp file exists (what a timeout kill leaves behind).
"""
import argparse
import json
import os
import subprocess
import sys
import time


def str2bool(v):
    if isinstance(v, bool):
        return v
    if v.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if v.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError("Boolean value expected (True/False)")


def parser_from_table(path):
    table = json.load(open(path))
    types = {"str": str, "int": int, "float": float, "str2bool": str2bool}
    p = argparse.ArgumentParser(description="stand-in for s2v_streaming_interact.py at %s" % table["commit"])
    for o in table["options"]:
        kw = {"default": o.get("default")}
        if o["action"] == "store_true":
            kw["action"] = "store_true"
        else:
            kw["type"] = types[o.get("type", "str")]
            if o.get("choices"):
                kw["choices"] = o["choices"]
        p.add_argument(*o["names"], **kw)
    return p


def fail(code, message):
    print(message, file=sys.stderr, flush=True)
    sys.exit(code)


def main():
    args = parser_from_table(os.environ["FAKE_LIVEAVATAR_TABLE"]).parse_args()
    for name in ("lora_path_dmd", "ckpt_dir", "training_config", "save_file"):
        value = getattr(args, name)
        if value is None or not os.path.isabs(value):
            fail(1, "Failed to download from HF Hub: LocalEntryNotFoundError (--%s %r is not an absolute path)" % (name, value))
        if name != "save_file" and not os.path.exists(value):
            fail(1, "FileNotFoundError: --%s %s does not exist" % (name, value))
    for part in args.audio.split("+"):
        if not os.path.exists(part):
            fail(1, "FileNotFoundError: audio %s does not exist (--audio is split on '+')" % part)
    if not os.path.exists(args.image):
        fail(1, "FileNotFoundError: image %s" % args.image)
    with open(os.environ["FAKE_LIVEAVATAR_LEDGER"], "a") as f:
        f.write(json.dumps({k: v for k, v in vars(args).items()}) + "\n")
    if args.offload_model is False:
        fail(1, "RuntimeError: Input type (CUDABFloat16Type) and weight type (CPUBFloat16Type) should be the same")
    frames = args.num_clip * args.infer_frames - 3
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-loop", "1", "-framerate", "25", "-i", args.image,
                    "-frames:v", str(frames), "-vf", "scale=64:64,format=yuv420p", "-c:v", "libx264", "-preset", "ultrafast",
                    "-f", "mp4", args.save_file], check=True)
    base, ext = os.path.splitext(args.save_file)
    temp = base + "_temp" + ext
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", args.save_file, "-i", args.audio, "-c:v", "copy",
                    "-c:a", "aac", "-map", "0:v:0", "-map", "1:a:0", "-shortest", temp], check=True)
    if "HANG" in args.prompt:
        while True:
            time.sleep(1)
    os.replace(temp, args.save_file)


if __name__ == "__main__":
    main()

"""Measures Live Avatar's real pipeline in one process: load once, then one `generate()` per case.

    python measure.py LIVEAVATAR_HOME OUT_JSONL CASE [CASE ...]        (under a size-1 NCCL group, as torchrun makes)

The load is the real `WanS2V.__init__` from the checkpoint on disk plus the real LoRA merge, as
`minimal_inference/s2v_streaming_interact.py` does it. Each case then calls the real `generate()` with the
arguments that script passes, and the real `save_video` + `merge_video_audio`, and writes one JSON line:
peak GPU memory allocated and reserved (PyTorch's counters, reset per case), the peak host RSS of this process
during the case (sampled every 20 ms), the DiT forwards counted by a hook, the seconds of each phase, the output's
duration from ffprobe, and any error. Load-time switches (`fp8`, `offload_kv_cache`, `t5_cpu`) are applied the way
the CLI applies them: fp8 converts the loaded DiT in place (so every case after it is fp8); the other two are
attributes the pipeline reads at call time.

Cases (name: settings):
""" 
import gc
import json
import logging
import os
import subprocess
import sys
import threading
import time

HOME = os.path.abspath(sys.argv[1])
OUT = sys.argv[2]
CASES = sys.argv[3:]
sys.path.insert(0, HOME)

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

# name -> (size, infer_frames, num_clip, online_decode, image, audio seconds, switches to set before the call)
MATRIX = {
    "bf16-384x256-f48-c1": ("384*256", 48, 1, False, "ref_16x9.jpg", 4, {}),
    "bf16-384x256-f48-c3": ("384*256", 48, 3, False, "ref_16x9.jpg", 12, {}),
    "bf16-384x256-f48-c10": ("384*256", 48, 10, False, "ref_16x9.jpg", 40, {}),
    "bf16-384x256-f48-c3-online": ("384*256", 48, 3, True, "ref_16x9.jpg", 12, {}),
    "bf16-384x256-f32-c1": ("384*256", 32, 1, False, "ref_16x9.jpg", 4, {}),
    "bf16-384x256-f48-c1-t5cpu": ("384*256", 48, 1, False, "ref_16x9.jpg", 4, {"t5_cpu": True}),
    "bf16-688x368-f48-c1-kvoffload": ("688*368", 48, 1, False, "ref_16x9.jpg", 4, {"offload_kv_cache": True}),
    "bf16-688x368-f48-c1": ("688*368", 48, 1, False, "ref_16x9.jpg", 4, {}),
    "fp8-704x384-f48-c1": ("704*384", 48, 1, False, "ref_16x9.jpg", 4, {"fp8": True}),
    "fp8-688x368-f48-c1": ("688*368", 48, 1, False, "ref_16x9.jpg", 4, {"fp8": True}),
    "fp8-688x368-f48-c1-kvoffload": ("688*368", 48, 1, False, "ref_16x9.jpg", 4, {"fp8": True, "offload_kv_cache": True}),
    "fp8-384x256-f48-c1-kvoffload-t5cpu": ("384*256", 48, 1, False, "ref_16x9.jpg", 4,
                                           {"fp8": True, "offload_kv_cache": True, "t5_cpu": True}),
}
__doc__ += "".join("    %s: %s\n" % (k, v[:6]) for k, v in MATRIX.items())


def emit(record):
    with open(OUT, "a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps(record), flush=True)


class RSSSampler:
    """The peak VmRSS of this process between start() and stop(), sampled every 20 ms."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def rss():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def start(self):
        self.peak = self.rss()
        self._stop.clear()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.rss())

    def stop(self):
        self._stop.set()
        self._t.join()
        return max(self.peak, self.rss())


def ffprobe(path):
    try:
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_type,width,height,nb_frames",
                              "-of", "json", path], capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr[-300:]}
    except Exception as e:  # noqa: BLE001
        return {"error": str(e)}


def clear_after_failure(pipe):
    """What a warm worker must do after a failed call: the pipeline frees its caches only on success."""
    for attr in ("kv_cache1", "shared_cond_cache", "crossattn_cache", "_sampler_timesteps"):
        if hasattr(pipe, attr):
            setattr(pipe, attr, None)
    gc.collect()
    torch.cuda.empty_cache()


def main():
    # save_video and merge_video_audio report their failures only through logging.
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(levelname)s: %(message)s", stream=sys.stdout)
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29611")
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    t0 = time.time()
    torch.cuda.set_device(0)
    dist.init_process_group(backend="nccl", init_method="env://", rank=0, world_size=1)
    from liveavatar.models.wan.causal_s2v_pipeline import WanS2V
    from liveavatar.models.wan.wan_2_2.configs import MAX_AREA_CONFIGS, WAN_CONFIGS
    from liveavatar.models.wan.wan_2_2.utils.utils import merge_video_audio, save_video
    from liveavatar.utils.args_config import parse_args_for_training_config
    t_import = time.time() - t0
    cfg = WAN_CONFIGS["s2v-14B"]
    ckpt = os.path.join(HOME, "ckpt", "Wan2.2-S2V-14B")
    rss = RSSSampler()
    rss.start()
    t1 = time.time()
    pipe = WanS2V(config=cfg, checkpoint_dir=ckpt, device_id=0, rank=0, t5_fsdp=False, dit_fsdp=False, use_sp=False,
                  sp_size=1, t5_cpu=False, convert_model_dtype=True, single_gpu=True, offload_kv_cache=False)
    t_build = time.time() - t1
    settings = parse_args_for_training_config(os.path.join(HOME, "liveavatar/configs/s2v_causal_sft.yaml"))
    t2 = time.time()
    pipe.noise_model = pipe.add_lora_to_model(pipe.noise_model, lora_rank=settings["lora_rank"],
                                              lora_alpha=settings["lora_alpha"],
                                              lora_target_modules=settings["lora_target_modules"],
                                              init_lora_weights=settings["init_lora_weights"],
                                              pretrained_lora_path=os.path.join(HOME, "ckpt/LiveAvatar/liveavatar.safetensors"),
                                              load_lora_weight_only=False)
    t_lora = time.time() - t2
    emit({"phase": "load", "import_s": round(t_import, 1), "build_s": round(t_build, 1), "lora_s": round(t_lora, 1),
          "gpu_alloc_gb": round(torch.cuda.memory_allocated() / 1e9, 3),
          "gpu_peak_alloc_gb": round(torch.cuda.max_memory_allocated() / 1e9, 3),
          "host_rss_gb": round(rss.rss() / 1e9, 2), "host_rss_peak_gb": round(rss.stop() / 1e9, 2)})

    forwards = [0]
    pipe.noise_model.register_forward_hook(lambda *a: forwards.__setitem__(0, forwards[0] + 1))
    is_fp8 = False
    outdir = os.path.join(HOME, "out")
    os.makedirs(outdir, exist_ok=True)
    for name in CASES:
        size, frames, clips, online, image, audio_s, switches = MATRIX[name]
        rec = {"case": name, "size": size, "infer_frames": frames, "num_clip": clips, "online_decode": online, **switches}
        if switches.get("fp8") and not is_fp8:
            from liveavatar.utils.fp8_linear import replace_linear_with_scaled_fp8
            t = time.time()
            replace_linear_with_scaled_fp8(pipe.noise_model, ignore_keys=[
                "text_embedding", "time_embedding", "time_projection", "head.head",
                "casual_audio_encoder.encoder.final_linear"])
            torch.cuda.synchronize()
            is_fp8 = True
            emit({"phase": "fp8-convert", "seconds": round(time.time() - t, 1),
                  "gpu_alloc_gb": round(torch.cuda.memory_allocated() / 1e9, 3)})
        pipe.offload_kv_cache = bool(switches.get("offload_kv_cache"))
        pipe.t5_cpu = bool(switches.get("t5_cpu"))
        if pipe.t5_cpu:
            pipe.text_encoder.model.cpu()
        audio = os.path.join(HOME, "inputs", "speech_%ds.wav" % audio_s)
        save_file = os.path.join(outdir, name + ".mp4")
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base_alloc = torch.cuda.memory_allocated()
        forwards[0] = 0
        rss.start()
        t = time.time()
        try:
            video, _ = pipe.generate(
                input_prompt="A teacher explaining fractions in a bright classroom",
                ref_image_path=os.path.join(HOME, "inputs", image), audio_path=audio, enable_tts=False,
                num_repeat=clips, pose_video=None, generate_size=size, max_area=MAX_AREA_CONFIGS[size],
                infer_frames=frames, shift=cfg.sample_shift, sample_solver="euler", sampling_steps=4, guide_scale=0.0,
                seed=420, offload_model=True, init_first_frame=False, use_dataset=False, dataset_sample_idx=0,
                drop_motion_noisy=False, num_gpus_dit=1, enable_vae_parallel=False, input_video_for_sam2=None,
                enable_online_decode=online)
            torch.cuda.synchronize()
            rec["generate_s"] = round(time.time() - t, 2)
            rec["frames_out"] = int(video.shape[1])
            rec["frame_hw"] = [int(video.shape[2]), int(video.shape[3])]
            rec["gpu_peak_alloc_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 3)
            rec["gpu_peak_reserved_gb"] = round(torch.cuda.max_memory_reserved() / 1e9, 3)
            rec["gpu_base_alloc_gb"] = round(base_alloc / 1e9, 3)
            rec["dit_forwards"] = forwards[0]
            rec["host_rss_peak_generate_gb"] = round(rss.peak / 1e9, 2)
            t = time.time()
            save_video(tensor=video[None], save_file=save_file, fps=cfg.sample_fps, nrow=1, normalize=True, value_range=(-1, 1))
            merge_video_audio(video_path=save_file, audio_path=audio)
            rec["save_mux_s"] = round(time.time() - t, 2)
            del video
            rec["host_rss_peak_gb"] = round(rss.stop() / 1e9, 2)
            rec["output"] = ffprobe(save_file)
        except Exception as e:  # noqa: BLE001
            rec["error"] = "%s: %s" % (type(e).__name__, str(e)[:400])
            rec["seconds_to_error"] = round(time.time() - t, 2)
            rec["gpu_peak_alloc_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 3)
            rec["gpu_alloc_after_error_gb"] = round(torch.cuda.memory_allocated() / 1e9, 3)
            rec["dit_forwards"] = forwards[0]
            rec["host_rss_peak_gb"] = round(rss.stop() / 1e9, 2)
            clear_after_failure(pipe)
            rec["gpu_alloc_after_clear_gb"] = round(torch.cuda.memory_allocated() / 1e9, 3)
        rec["gpu_alloc_after_gb"] = round(torch.cuda.memory_allocated() / 1e9, 3)
        emit(rec)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

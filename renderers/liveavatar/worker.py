#!/usr/bin/env python3
"""Live Avatar as an avatar-batch warm worker (docs/workers.md): load the 14B pipeline once, render one clip per request.

    python3 worker.py --liveavatar_home=PATH [--fp8]

It builds what minimal_inference/s2v_streaming_interact.py builds for one GPU (a size-1 NCCL group, `WanS2V` with
single_gpu and convert_model_dtype, the LoRA merged from ckpt/LiveAvatar/liveavatar.safetensors, fp8 linears with
--fp8), says ready on $AVATAR_BATCH_WORKER_SOCKET, then for each render request calls `generate()` with what that
script passes, `save_video` and `merge_video_audio`, and answers done or failed. `generate()` frees its caches
only when it succeeds, so after a failed call this worker clears them itself (the four KV and cond caches and the
cached step schedule) and puts the models back where offload_model expects them, or the next clip would inherit
them. Between clips it checks that allocated memory returns to what the load left, and says so when it does not.
Load-time choices stay fixed for the worker's life: --fp8 (a load setting in the profile). extra_args may carry
--offload_kv_cache and --t5_cpu, which the pipeline reads per call.
"""
import argparse
import gc
import json
import logging
import os
import socket
import sys
import time

t_start = time.time()
p = argparse.ArgumentParser()
p.add_argument("--liveavatar_home", required=True)
p.add_argument("--fp8", action="store_true")
p.add_argument("--task", default="s2v-14B")
a = p.parse_args()
HOME = os.path.abspath(a.liveavatar_home)
sys.path.insert(0, HOME)
CONTEXT_GIB = 0.5  # the CUDA context, which PyTorch's counters leave out
CREEP_WARN_GIB = 1.0

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(levelname)s: %(message)s", stream=sys.stdout)
# One process, one GPU, as torchrun --nproc_per_node=1 would set it up: generate() asks for the rank, and loading
# waits on a barrier.
os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
os.environ.setdefault("MASTER_PORT", "29611")
for k, v in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")):
    os.environ.setdefault(k, v)
torch.cuda.set_device(0)
dist.init_process_group(backend="nccl", init_method="env://", rank=0, world_size=1)

from liveavatar.models.wan.causal_s2v_pipeline import WanS2V  # noqa: E402
from liveavatar.models.wan.wan_2_2.configs import MAX_AREA_CONFIGS, WAN_CONFIGS  # noqa: E402
from liveavatar.models.wan.wan_2_2.utils.utils import merge_video_audio, save_video  # noqa: E402
from liveavatar.utils.args_config import parse_args_for_training_config  # noqa: E402

t_import = time.time()
cfg = WAN_CONFIGS[a.task]
pipe = WanS2V(config=cfg, checkpoint_dir=os.path.join(HOME, "ckpt", "Wan2.2-S2V-14B"), device_id=0, rank=0, t5_fsdp=False,
              dit_fsdp=False, use_sp=False, sp_size=1, t5_cpu=False, convert_model_dtype=True, single_gpu=True,
              offload_kv_cache=False)
settings = parse_args_for_training_config(os.path.join(HOME, "liveavatar", "configs", "s2v_causal_sft.yaml"))
pipe.noise_model = pipe.add_lora_to_model(
    pipe.noise_model, lora_rank=settings["lora_rank"], lora_alpha=settings["lora_alpha"],
    lora_target_modules=settings["lora_target_modules"], init_lora_weights=settings["init_lora_weights"],
    pretrained_lora_path=os.path.join(HOME, "ckpt", "LiveAvatar", "liveavatar.safetensors"), load_lora_weight_only=False)
if a.fp8:
    from liveavatar.utils.fp8_linear import replace_linear_with_scaled_fp8
    replace_linear_with_scaled_fp8(pipe.noise_model, ignore_keys=[
        "text_embedding", "time_embedding", "time_projection", "head.head", "casual_audio_encoder.encoder.final_linear"])
gc.collect()
torch.cuda.synchronize()
torch.cuda.empty_cache()
baseline = torch.cuda.memory_allocated()
t_loaded = time.time()
print(f"worker: imports {t_import - t_start:.1f} s, build + LoRA{' + fp8' if a.fp8 else ''} {t_loaded - t_import:.1f} s, "
      f"{baseline / 2**30:.2f} GiB allocated", flush=True)


def gib(x):
    return round(x / 2**30 + CONTEXT_GIB, 3)


def recover(offload_model):
    """After a failed generate(): what its success path would have freed, freed here."""
    for attr in ("kv_cache1", "shared_cond_cache", "crossattn_cache", "_sampler_timesteps", "_sampler_sigmas"):
        if hasattr(pipe, attr):
            setattr(pipe, attr, None)
    if offload_model:
        # Where generate() leaves the models when it returns: the VAE on the host, the DiT on the GPU.
        try:
            pipe.vae.model.cpu()
            pipe.noise_model.to(pipe.device)
        except Exception as e:  # noqa: BLE001
            print(f"worker: could not move the models back after a failure: {e!r}", file=sys.stderr, flush=True)
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()


def render(req):
    st = req["settings"]
    extra = list(st.get("extra_args") or [])
    pipe.offload_kv_cache = "--offload_kv_cache" in extra
    pipe.t5_cpu = "--t5_cpu" in extra
    if pipe.t5_cpu:
        pipe.text_encoder.model.cpu()
    size = st["size"]
    output = req["output"]
    video, _ = pipe.generate(
        input_prompt=st["prompt"], ref_image_path=st["image"], audio_path=st["audio"], enable_tts=False,
        num_repeat=st["num_clip"], pose_video=None, generate_size=size, max_area=MAX_AREA_CONFIGS[size],
        infer_frames=st["infer_frames"], shift=cfg.sample_shift, sample_solver="euler", sampling_steps=st["sample_steps"],
        guide_scale=0.0, seed=st["seed"], offload_model=bool(st["offload_model"]), init_first_frame=False, use_dataset=False,
        dataset_sample_idx=0, drop_motion_noisy=False, num_gpus_dit=1, enable_vae_parallel=False, input_video_for_sam2=None,
        enable_online_decode=bool(st["online_decode"]))
    t_generated = time.time()
    save_video(tensor=video[None], save_file=output, fps=cfg.sample_fps, nrow=1, normalize=True, value_range=(-1, 1))
    del video
    merge_video_audio(video_path=output, audio_path=st["audio"])
    # Both only log their failures (no ffmpeg, say): an answer must not claim a file that is not there.
    if not os.path.exists(output) or os.path.getsize(output) == 0:
        raise RuntimeError("save_video/merge_video_audio wrote no output (is ffmpeg on the worker's PATH?)")
    return t_generated


def main():
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(os.environ["AVATAR_BATCH_WORKER_SOCKET"])
    stream = sock.makefile("rwb", buffering=0)

    def say(obj):
        stream.write((json.dumps(obj) + "\n").encode())

    say({"event": "ready", "pid": os.getpid(), "load_seconds": round(t_loaded - t_start, 2),
         "resident_gb": gib(torch.cuda.memory_reserved())})
    served = 0
    for raw in stream:
        if not raw.strip():
            continue
        req = json.loads(raw)
        if req.get("request") == "exit":
            break
        job = req["job"]
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.time()
        print(f"worker: {job} attempt {req.get('attempt')}: {req['settings'].get('size')} x{req['settings'].get('num_clip')} clips", flush=True)
        try:
            t_generated = render(req)
            peak = gib(torch.cuda.max_memory_reserved())
            print(f"worker: {job} done: generate {t_generated - t0:.1f} s, save + mux {time.time() - t_generated:.1f} s, "
                  f"peak {peak} GiB", flush=True)
            say({"event": "done", "job": job, "peak_memory_gb": peak, "seconds": round(time.time() - t0, 2)})
        except torch.OutOfMemoryError as e:
            print(f"torch.OutOfMemoryError: {e}", file=sys.stderr, flush=True)
            recover(bool(req["settings"].get("offload_model")))
            say({"event": "failed", "job": job, "error": f"torch.OutOfMemoryError: {e}", "oom": True,
                 "peak_memory_gb": gib(torch.cuda.max_memory_reserved())})
        except Exception as e:  # noqa: BLE001  (one clip's failure is reported; the worker serves the next)
            logging.exception("worker: %s failed", job)
            recover(bool(req["settings"].get("offload_model")))
            say({"event": "failed", "job": job, "error": f"{type(e).__name__}: {str(e)[:2000]}", "oom": False})
        served += 1
        gc.collect()
        torch.cuda.empty_cache()
        creep = (torch.cuda.memory_allocated() - baseline) / 2**30
        print(f"worker: after {served} clip(s): {torch.cuda.memory_allocated() / 2**30:.2f} GiB allocated "
              f"({creep:+.2f} against the load), {torch.cuda.memory_reserved() / 2**30:.2f} GiB reserved", flush=True)
        if creep > CREEP_WARN_GIB:
            print(f"worker: WARNING: allocated memory crept {creep:.2f} GiB above the load's", file=sys.stderr, flush=True)
    dist.destroy_process_group()


main()

"""Random weights for Live Avatar in the layout its README downloads, built with its own classes.

    python make_weights.py LIVEAVATAR_HOME          # writes LIVEAVATAR_HOME/ckpt/... and LIVEAVATAR_HOME/inputs/...

Layout (what `huggingface-cli download Wan-AI/Wan2.2-S2V-14B` and `Quark-Vision/Live-Avatar` give):
    ckpt/Wan2.2-S2V-14B/config.json + diffusion_pytorch_model-0000N-of-0000M.safetensors + index   (the DiT)
    ckpt/Wan2.2-S2V-14B/models_t5_umt5-xxl-enc-bf16.pth                                       (umT5-XXL encoder)
    ckpt/Wan2.2-S2V-14B/google/umt5-xxl/                                                      (its tokenizer)
    ckpt/Wan2.2-S2V-14B/Wan2.1_VAE.pth                                                        (the VAE)
    ckpt/Wan2.2-S2V-14B/wav2vec2-large-xlsr-53-english/                                       (audio encoder)
    ckpt/LiveAvatar/liveavatar.safetensors                                                    (the LoRA)

Every tensor has the real shape and dtype, so the real loaders, the real memory and the real kernels run; only
the values are random. What is not real: the tokenizer vocabulary (a word-level stand-in whose ids all fall in
umT5's range) and the wav2vec2 vocabulary. Each part prints its size and the seconds it took, as JSON lines.
"""
import json
import os
import sys
import time
import wave

import numpy as np
import torch

HOME = os.path.abspath(sys.argv[1])
sys.path.insert(0, HOME)
CKPT = os.path.join(HOME, "ckpt", "Wan2.2-S2V-14B")
LORA = os.path.join(HOME, "ckpt", "LiveAvatar")
INPUTS = os.path.join(HOME, "inputs")
os.makedirs(CKPT, exist_ok=True)
os.makedirs(LORA, exist_ok=True)
os.makedirs(INPUTS, exist_ok=True)
T0 = time.time()


def report(part, **kw):
    kw.update(part=part, t=round(time.time() - T0, 1))
    print(json.dumps(kw), flush=True)


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


@torch.no_grad()
def randomize(module):
    """Values in the ranges trained weights have: norms 1, biases 0, the rest N(0, 0.02)."""
    for name, p in module.named_parameters():
        if name.endswith("bias"):
            p.zero_()
        elif "norm" in name and p.dim() == 1:
            p.fill_(1.0)
        else:
            p.normal_(0.0, 0.02)


def dit_kwargs():
    from liveavatar.models.wan.wan_2_2.configs.wan_s2v_14B_modified import s2v_14B
    kw = {k: v for k, v in s2v_14B.transformer.items() if k != "__name__"}
    # Constructor arguments that the released config.json sets and the repo's config file leaves to defaults.
    kw.update(in_dim=16, out_dim=16, text_dim=4096, text_len=512, num_audio_token=4, model_type="s2v")
    return kw


def build_dit_and_lora():
    import accelerate
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import save_file
    from liveavatar.models.wan.causal_model_s2v import CausalWanModel_S2V
    from liveavatar.utils.args_config import parse_args_for_training_config

    with accelerate.init_empty_weights():
        model = CausalWanModel_S2V(**dit_kwargs())
    model = model.to(torch.bfloat16).to_empty(device="cuda")
    randomize(model)
    n = sum(p.numel() for p in model.parameters())
    keys = len(model.state_dict())
    report("dit-built", params=n, keys=keys, gpu_gb=round(torch.cuda.memory_allocated() / 1e9, 3))
    assert keys == 1260, "the released checkpoint has 1260 keys; this build has %d" % keys
    model.save_pretrained(CKPT, max_shard_size="10GB", safe_serialization=True)
    report("dit-saved", bytes=dir_bytes(CKPT))

    # The LoRA: the adapter the training config describes, on the same modules, saved without PEFT's prefix
    # (the real loader adds it back).
    settings = parse_args_for_training_config(os.path.join(HOME, "liveavatar/configs/s2v_causal_sft.yaml"))
    cfg = LoraConfig(r=settings["lora_rank"], lora_alpha=settings["lora_alpha"],
                     target_modules=settings["lora_target_modules"].split(","), init_lora_weights=True)
    peft_model = get_peft_model(model, cfg)
    state = {}
    for k, v in peft_model.state_dict().items():
        if "lora_" in k:
            t = v.detach().float()
            state[k.removeprefix("base_model.model.")] = (t.normal_(0.0, 0.001) if "lora_B" in k else t).cpu().contiguous()
    save_file(state, os.path.join(LORA, "liveavatar.safetensors"))
    report("lora-saved", tensors=len(state), params=sum(t.numel() for t in state.values()),
           bytes=os.path.getsize(os.path.join(LORA, "liveavatar.safetensors")))
    del peft_model, model, state
    torch.cuda.empty_cache()


def build_t5():
    from liveavatar.models.wan.wan_2_2.modules.t5 import umt5_xxl
    enc = umt5_xxl(encoder_only=True, return_tokenizer=False, dtype=torch.bfloat16, device="cuda")
    randomize(enc)
    path = os.path.join(CKPT, "models_t5_umt5-xxl-enc-bf16.pth")
    torch.save({k: v.cpu() for k, v in enc.state_dict().items()}, path)
    report("t5-saved", params=sum(p.numel() for p in enc.parameters()), bytes=os.path.getsize(path))
    del enc
    torch.cuda.empty_cache()


def build_t5_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for i, w in enumerate("a the teacher explaining fractions in bright classroom talking smiling person".split()):
        vocab[w] = 3 + i
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    out = os.path.join(CKPT, "google", "umt5-xxl")
    fast.save_pretrained(out)
    report("t5-tokenizer-saved", vocab=len(vocab))


def build_vae():
    from liveavatar.models.wan.wan_2_2.modules.vae2_1 import WanVAE_
    cfg = dict(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
               temperal_downsample=[False, True, True], dropout=0.0)
    with torch.device("cuda"):
        vae = WanVAE_(**cfg)
    randomize(vae)
    path = os.path.join(CKPT, "Wan2.1_VAE.pth")
    torch.save({k: v.float().cpu() for k, v in vae.state_dict().items()}, path)
    report("vae-saved", params=sum(p.numel() for p in vae.parameters()), bytes=os.path.getsize(path))


def build_wav2vec():
    from transformers import (Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC,
                              Wav2Vec2Processor)
    out = os.path.join(CKPT, "wav2vec2-large-xlsr-53-english")
    os.makedirs(out, exist_ok=True)
    letters = ["<pad>", "<s>", "</s>", "<unk>", "|"] + list("ABCDEFGHIJKLMNOPQRSTUVWXYZ'") + ["-"]
    with open(os.path.join(out, "vocab.json"), "w") as f:
        json.dump({c: i for i, c in enumerate(letters)}, f)
    tok = Wav2Vec2CTCTokenizer(os.path.join(out, "vocab.json"), unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|")
    fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                                  return_attention_mask=True)
    Wav2Vec2Processor(feature_extractor=fe, tokenizer=tok).save_pretrained(out)
    # wav2vec2-large-xlsr-53: 24 layers, 1024 wide, stable layer norm, conv bias (its published config).
    cfg = Wav2Vec2Config(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                         feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True,
                         vocab_size=len(letters), feat_extract_activation="gelu")
    model = Wav2Vec2ForCTC(cfg)
    model.save_pretrained(out)
    report("wav2vec-saved", params=sum(p.numel() for p in model.parameters()), bytes=dir_bytes(out))


def build_inputs():
    from PIL import Image
    rng = np.random.default_rng(7)
    # A 16:9 portrait-sized reference (1280x720, as the measured runs used) and a square one.
    for name, (w, h) in {"ref_16x9.jpg": (1280, 720), "ref_1x1.jpg": (720, 720)}.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(os.path.join(INPUTS, name), quality=90)
    for seconds in (4, 12, 40):
        t = np.arange(int(16000 * seconds)) / 16000.0
        sig = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
        pcm = (sig * 32767).astype("<i2")
        with wave.open(os.path.join(INPUTS, "speech_%ds.wav" % seconds), "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(16000)
            f.writeframes(pcm.tobytes())
    report("inputs-saved", files=sorted(os.listdir(INPUTS)))


if __name__ == "__main__":
    parts = sys.argv[2:] or ["inputs", "tokenizer", "vae", "wav2vec", "dit", "t5"]
    for p in parts:
        {"inputs": build_inputs, "tokenizer": build_t5_tokenizer, "vae": build_vae, "wav2vec": build_wav2vec,
         "dit": build_dit_and_lora, "t5": build_t5}[p]()
    report("done", ckpt_bytes=dir_bytes(os.path.join(HOME, "ckpt")))

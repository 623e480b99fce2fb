"""One-shot GPU check of lenswidget in bf16 against HuggingFace transformers (< 8 minutes on one GPU).

Sections (each one's numbers, or its error, go into one JSON file, written after every section):

1. ``parity``: per family (GPT-2, GPT-NeoX, GPT-J, Llama 3.1, Qwen2, Qwen3, Mistral, Phi-3,
   OLMo 2, Gemma, Gemma 2, Gemma 3), a random-weight model with a bf16-exact checkpoint:
   mean |log-prob error| against the float32 reference (HF in float32) for HF bf16 and
   lenswidget bf16 (processed and raw), their ratio (target <= 1.5), and lenswidget vs HF bf16.
2. ``speed``: random-weight models shaped like Qwen3-0.6B and Llama-3.2-1B in bf16: forward,
   run_with_cache (every hook) and greedy generate, lenswidget vs HF (median, p90, ratios),
   with parity (log-prob error against a float32 reference, greedy tokens shared with HF).
3. ``patching``: one sweep (``get_act_patch_resid_pre``) on the Qwen3-shaped model: the fast
   engine's time, and its agreement with the hook-based path.

Needs only torch, transformers, safetensors, accelerate and lenswidget (nothing is downloaded).
Usage::

    python benchmarks/gpu_check.py                      # cuda if available; JSON to $OUT or benchmarks/results
    python benchmarks/gpu_check.py --device cpu --small # tiny shapes: the CI smoke run
    python benchmarks/gpu_check.py --out /path/result.json --budget 420
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BF16 = torch.bfloat16


# ----------------------------------------------------------------------------- models
def _family_config(name: str, small: bool):
    """An HF config of ``name`` with realistic structure (GQA, windows, rope scaling, qk-norm)."""
    import transformers as tf

    d, L, H, KV, dh, mlp, V = (64, 2, 4, 2, 16, 128, 211) if small else (512, 4, 8, 2, 64, 1024, 4096)
    win = 8 if small else 64
    ctx = 512 if small else 2048
    common = dict(num_hidden_layers=L, hidden_size=d, num_attention_heads=H, intermediate_size=mlp,
                  vocab_size=V, max_position_embeddings=ctx)
    llama3 = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
              "high_freq_factor": 4.0, "original_max_position_embeddings": 32 if small else 128}
    half = dh // 2
    if name == "gpt2":
        return tf.GPT2Config(n_layer=L, n_embd=d, n_head=H, vocab_size=V, n_positions=ctx,
                             bos_token_id=0, eos_token_id=0)
    if name == "gpt_neox":
        return tf.GPTNeoXConfig(**common, rope_parameters={"rope_theta": 10000.0, "rope_type": "default",
                                                          "partial_rotary_factor": 0.25})
    if name == "gptj":
        return tf.GPTJConfig(n_layer=L, n_embd=d, n_head=H, rotary_dim=dh // 2, vocab_size=V, n_positions=ctx,
                             bos_token_id=0, eos_token_id=0, tie_word_embeddings=False)
    if name == "llama3.1":
        return tf.LlamaConfig(**common, num_key_value_heads=KV, head_dim=dh, rope_parameters=llama3)
    if name == "qwen2":
        return tf.Qwen2Config(**common, num_key_value_heads=KV, use_sliding_window=True, sliding_window=win,
                              max_window_layers=L // 2, tie_word_embeddings=False)
    if name == "qwen3":
        return tf.Qwen3Config(**common, num_key_value_heads=KV, head_dim=dh, tie_word_embeddings=True)
    if name == "mistral":
        return tf.MistralConfig(**common, num_key_value_heads=KV, head_dim=dh, sliding_window=win)
    if name == "phi3":
        return tf.Phi3Config(**common, num_key_value_heads=KV, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                             original_max_position_embeddings=32 if small else 128, tie_word_embeddings=False,
                             rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                                              "short_factor": [1.0 + 0.05 * i for i in range(d // H // 2)],
                                              "long_factor": [1.0 + 0.5 * i for i in range(d // H // 2)],
                                              "original_max_position_embeddings": 32 if small else 128})
    if name == "olmo2":
        return tf.Olmo2Config(**common, num_key_value_heads=KV, tie_word_embeddings=False)
    if name == "gemma":
        return tf.GemmaConfig(**common, num_key_value_heads=KV, head_dim=dh)
    if name == "gemma2":
        return tf.Gemma2Config(**common, num_key_value_heads=KV, head_dim=dh, sliding_window=win,
                               query_pre_attn_scalar=dh, attn_logit_softcapping=50.0, final_logit_softcapping=30.0)
    if name == "gemma3":
        types = ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(L)]
        return tf.Gemma3TextConfig(**common, num_key_value_heads=KV, head_dim=dh, sliding_window=win,
                                   query_pre_attn_scalar=dh, layer_types=types, rope_parameters={
                                       "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
                                       "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}})
    raise ValueError(f"unknown family {name!r}")


FAMILIES = ("gpt2", "gpt_neox", "gptj", "llama3.1", "qwen2", "qwen3", "mistral", "phi3", "olmo2", "gemma",
            "gemma2", "gemma3")


def _randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Weights of a trained-like scale: matrices ~ N(0, 1/d), norm weights 1 +- 0.2, small biases."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen).to(p.device)
            if p.ndim >= 2:
                p.copy_(noise / math.sqrt(p.shape[-1]))
            elif "norm" in name or "ln" in name.split(".")[-2]:
                p.copy_((1.0 + 0.2 * noise) if name.endswith("weight") else 0.1 * noise)
            else:
                p.copy_(0.1 * noise)
    return model


def _weights_to(model: torch.nn.Module, dtype) -> torch.nn.Module:
    """Cast the parameters only, as ``from_pretrained(dtype=...)`` loads them: buffers such as the
    rotary ``inv_freq`` stay float32 (``Module.to(bf16)`` would round them too, and a reference
    built that way carries bf16 rotary frequencies, whose error grows with the position)."""
    for p in model.parameters():
        p.data = p.data.to(dtype)
    return model


def _hf_model(config, device: str, dtype=torch.float32, randomize: bool = True):
    """A seeded random HF model built on ``device`` (HF's own init, or :func:`_randomize`)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32 if randomize else dtype)
    if randomize:
        _randomize(model)
    return _weights_to(model, dtype).eval()


def _sdpa(hf):
    try:
        hf.set_attn_implementation("sdpa")
    except (ValueError, ImportError):
        hf.set_attn_implementation("eager")
    return hf


def _lw(hf, device: str, processed: bool = True):
    from lenswidget import HookedTransformer

    flags = dict(fold_ln=processed, center_writing_weights=processed, center_unembed=processed,
                 fold_value_biases=processed)
    return HookedTransformer.from_pretrained("gpu-check", hf_model=hf, dtype=BF16, device=device, **flags)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------- 1. parity
def parity(device: str, small: bool, budget, families=FAMILIES) -> dict:
    out = {}
    seq = 48 if small else 256
    for name in families:
        if budget():
            out[name] = {"skipped": "time budget"}
            continue
        try:
            cfg = _family_config(name, small)
            tokens = torch.randint(0, cfg.vocab_size, (2, seq), generator=torch.Generator().manual_seed(1)).to(device)
            hf = _weights_to(_hf_model(cfg, device, BF16), torch.float32)  # a bf16-exact checkpoint
            with torch.no_grad():
                ref = hf(tokens).logits.double().log_softmax(-1)
                hf16 = _sdpa(_weights_to(hf, BF16))
                theirs = hf16(tokens).logits.double().log_softmax(-1)
                row = {"hf_bf16_err": (theirs - ref).abs().mean().item()}
                for processed in (True, False):
                    model = _lw(hf16, device, processed)
                    ours = model(tokens).double().log_softmax(-1)
                    key = "lw_processed" if processed else "lw_raw"
                    row[key + "_err"] = (ours - ref).abs().mean().item()
                    row[key + "_ratio"] = row[key + "_err"] / row["hf_bf16_err"]
                    row[key + "_vs_hf_bf16"] = (ours - theirs).abs().mean().item()
                    del model
            row["ok"] = max(row["lw_processed_ratio"], row["lw_raw_ratio"]) <= 1.5
            out[name] = row
            del hf, hf16
        except Exception as exc:  # noqa: BLE001 - record and go on
            out[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=4)}
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return out


# ----------------------------------------------------------------------------- 2. speed
def _shape_config(name: str, small: bool):
    import transformers as tf

    if name == "qwen3-0.6b":
        dims = dict(hidden_size=1024, num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
                    head_dim=128, intermediate_size=3072, vocab_size=151936)
        if small:
            dims = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                        head_dim=16, intermediate_size=128, vocab_size=211)
        return tf.Qwen3Config(**dims, max_position_embeddings=40960, tie_word_embeddings=True,
                              rope_parameters={"rope_type": "default", "rope_theta": 1e6}, rms_norm_eps=1e-6,
                              bos_token_id=None, eos_token_id=None, pad_token_id=None)
    dims = dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                head_dim=64, intermediate_size=8192, vocab_size=128256)
    if small:
        dims = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                    head_dim=16, intermediate_size=128, vocab_size=211)
    return tf.LlamaConfig(**dims, max_position_embeddings=131072, tie_word_embeddings=True, rms_norm_eps=1e-5,
                          rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
                                           "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                           "original_max_position_embeddings": 8192},
                          bos_token_id=None, eos_token_id=None, pad_token_id=None)


def _timed(fn, device: str, reps: int) -> list:
    times = []
    for _ in range(reps):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return times


def _paired(ours, theirs, device: str, reps: int) -> dict:
    with torch.inference_mode():
        for _ in range(2):
            ours()
            theirs()
        a, b = [], []
        for i in range(reps):  # interleaved, alternating order
            first, second = (ours, theirs) if i % 2 == 0 else (theirs, ours)
            t1 = _timed(first, device, 1)[0]
            t2 = _timed(second, device, 1)[0]
            (a, b)[0 if first is ours else 1].append(t1)
            (a, b)[1 if first is ours else 0].append(t2)

    def p90(x):
        return sorted(x)[min(len(x) - 1, math.ceil(0.9 * len(x)) - 1)]

    ma, mb = statistics.median(a), statistics.median(b)
    return {"lw_median_s": ma, "hf_median_s": mb, "ratio": ma / mb, "lw_p90_s": p90(a), "hf_p90_s": p90(b),
            "ratio_p90": p90(a) / p90(b), "reps": reps}


def speed(device: str, small: bool, budget) -> dict:
    out = {}
    batch, seq, prompt, new = (2, 32, 8, 8) if small else (4, 512, 128, 64)
    reps = 3 if small else 7
    for name in ("qwen3-0.6b", "llama-3.2-1b"):
        if budget():
            out[name] = {"skipped": "time budget"}
            continue
        row: dict = {}
        try:
            cfg = _shape_config(name, small)
            t0 = time.perf_counter()
            hf16 = _sdpa(_hf_model(cfg, device, BF16, randomize=False))  # HF's own init, small or not
            row["hf_build_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            model = _lw(hf16, device, processed=True)
            _sync(device)
            row["lw_load_s"] = time.perf_counter() - t0
            tokens = torch.randint(0, cfg.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(2)).to(device)
            with torch.inference_mode():
                theirs = hf16(tokens).logits
                ours = model(tokens)
                ref = _weights_to(copy.deepcopy(hf16), torch.float32)  # float32 compute, same (bf16) weights
                ref_lp = ref(tokens).logits.double().log_softmax(-1)
                del ref
                row["parity"] = {
                    "hf_bf16_err": (theirs.double().log_softmax(-1) - ref_lp).abs().mean().item(),
                    "lw_bf16_err": (ours.double().log_softmax(-1) - ref_lp).abs().mean().item(),
                    "lw_vs_hf_bf16": (ours.double().log_softmax(-1) - theirs.double().log_softmax(-1)).abs().mean().item(),
                }
                row["parity"]["ratio"] = row["parity"]["lw_bf16_err"] / row["parity"]["hf_bf16_err"]
                del theirs, ours, ref_lp
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
            row["forward"] = _paired(lambda: model(tokens), lambda: hf16(tokens), device, reps)
            row["run_with_cache"] = _paired(lambda: model.run_with_cache(tokens), lambda: hf16(tokens), device, reps)
            p = tokens[:1, :prompt]
            gen_ours = lambda: model.generate(p, max_new_tokens=new, do_sample=False, stop_at_eos=False, verbose=False)  # noqa: E731
            gen_hf = lambda: hf16.generate(p, max_new_tokens=new, min_new_tokens=new, do_sample=False,  # noqa: E731
                                           pad_token_id=0)
            row["generate"] = _paired(gen_ours, gen_hf, device, max(3, reps // 2))
            with torch.inference_mode():
                a, b = gen_ours()[0, prompt:], gen_hf()[0, prompt:]
            same = (a == b).int().tolist()
            row["generate"]["greedy_tokens_shared"] = same.index(0) if 0 in same else len(same)
            row["generate"]["new_tokens"] = new
            del model, hf16
        except Exception as exc:  # noqa: BLE001
            row["error"] = f"{type(exc).__name__}: {exc}"
            row["traceback"] = traceback.format_exc(limit=4)
        out[name] = row
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return out


# ----------------------------------------------------------------------------- 3. patching
def patching_sweep(device: str, small: bool, budget) -> dict:
    if budget():
        return {"skipped": "time budget"}
    from lenswidget import patching

    try:
        cfg = _shape_config("qwen3-0.6b", small)
        hf16 = _sdpa(_hf_model(cfg, device, BF16, randomize=True))
        model = _lw(hf16, device, processed=True)
        del hf16
        batch, seq = (2, 8) if small else (2, 32)
        gen = torch.Generator().manual_seed(3)
        clean = torch.randint(0, cfg.vocab_size, (batch, seq), generator=gen).to(device)
        corrupted = clean.clone()
        corrupted[:, seq // 2] = torch.randint(0, cfg.vocab_size, (batch,), generator=gen).to(device)
        with torch.no_grad():
            _, cache = model.run_with_cache(clean)
        a, b = 5, 7
        metric = patching.batched_metric(lambda lg: (lg[:, :, -1, a] - lg[:, :, -1, b]).float().mean(1), positions=[-1])
        row = {"sweep": "get_act_patch_resid_pre", "runs": cfg.num_hidden_layers * seq, "batch": batch, "seq": seq,
               "reason_if_not_fast": patching.engine.fast_path_reason(model, "resid_pre", corrupted)}
        _sync(device)
        t = time.perf_counter()
        fast = patching.get_act_patch_resid_pre(model, corrupted, cache, metric, verbose=False, method="fast")
        _sync(device)
        row["fast_s"] = time.perf_counter() - t
        t = time.perf_counter()
        hooks = patching.get_act_patch_resid_pre(model, corrupted, cache, metric, verbose=False, method="hooks")
        _sync(device)
        row["hooks_s"] = time.perf_counter() - t
        scale = max(1e-6, hooks.abs().max().item())
        row["max_abs_diff_fast_vs_hooks"] = (fast.float() - hooks.float()).abs().max().item()
        row["rel_diff"] = row["max_abs_diff_fast_vs_hooks"] / scale
        row["ok"] = bool(torch.isfinite(fast).all()) and row["rel_diff"] <= 0.05
        return row
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=4)}


# ----------------------------------------------------------------------------- main
def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--small", action="store_true", help="tiny shapes (CPU smoke run)")
    ap.add_argument("--out", default=None, help="JSON path (default: $OUT/gpu_check.json or benchmarks/results)")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds after which remaining sections are skipped")
    ap.add_argument("--sections", default="parity,speed,patching")
    ap.add_argument("--families", default=",".join(FAMILIES), help="families of the parity section")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch sees no GPU; use --device cpu --small")
    if args.out:
        out_path = Path(args.out)
    elif os.environ.get("OUT"):
        out_path = Path(os.environ["OUT"]) / "gpu_check.json"
    else:
        out_path = ROOT / "benchmarks" / "results" / "gpu_check.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    def over_budget() -> bool:
        return time.perf_counter() - start > args.budget

    import transformers

    result = {
        "device": args.device,
        "device_name": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor(),
        "torch": torch.__version__, "transformers": transformers.__version__, "small": args.small,
        "dtype": "bfloat16", "budget_s": args.budget,
    }

    def save() -> None:
        result["elapsed_s"] = time.perf_counter() - start
        out_path.write_text(json.dumps(result, indent=2))

    with torch.no_grad():  # scoped: main() is also called in-process by the tests
        families = tuple(f for f in args.families.split(",") if f)
        unknown = sorted(set(families) - set(FAMILIES))
        if unknown:
            raise SystemExit(f"unknown families {unknown}; valid: {', '.join(FAMILIES)}")
        sections = {"parity": lambda *a: parity(*a, families=families), "speed": speed, "patching": patching_sweep}
        for name in args.sections.split(","):
            if name not in sections:
                raise SystemExit(f"unknown section {name!r}; valid: {', '.join(sections)}")
            t = time.perf_counter()
            result[name] = sections[name](args.device, args.small, over_budget)
            result[name + "_s"] = time.perf_counter() - t
            save()
            print(f"[gpu_check] {name} done in {result[name + '_s']:.1f}s", flush=True)
    _summary(result)
    print(f"[gpu_check] wrote {out_path}")
    return result


def _summary(result: dict) -> None:
    print(f"{'family':<10}{'HF bf16 err':>12}{'lw proc':>10}{'lw raw':>10}{'ratio':>7}")
    for name, row in result.get("parity", {}).items():
        if "hf_bf16_err" in row:
            ratio = max(row["lw_processed_ratio"], row["lw_raw_ratio"])
            print(f"{name:<10}{row['hf_bf16_err']:>12.4f}{row['lw_processed_err']:>10.4f}{row['lw_raw_err']:>10.4f}"
                  f"{ratio:>7.2f}")
        else:
            print(f"{name:<10} {row}")
    for name, row in result.get("speed", {}).items():
        for k in ("forward", "run_with_cache", "generate"):
            if k in row:
                print(f"{name:<14}{k:<16} ratio {row[k]['ratio']:.2f} (p90 {row[k]['ratio_p90']:.2f})")


if __name__ == "__main__":
    main()

"""Activation patching on SmolLM2-135M: lenswidget vs the naive loop vs TransformerLens 3.9.0.

    bash benchmarks/tl_env.sh                      # once: TransformerLens 3.9.0 in .tl-bench/
    .venv/bin/python benchmarks/bench_patching.py  # table + benchmarks/results/bench_patching.json

Workload: 8 prompts of equal length, seed-004 style ("123 x 456 = "), corrupted = the prompt
list reversed; metric = mean logit difference between the right and a wrong first answer digit,
declared as a batched metric reading the last position for lenswidget (TransformerLens and the
naive loop get the same function as a plain metric). Sweeps: resid_pre [L, pos],
attn_head_out_all_pos [L, H], attn_head_out_by_pos [L, pos, H], plus attribution patching.

TransformerLens runs in a subprocess with .tl-bench/bin/python (this file with --tl-worker),
on the same float32 weights (built offline from the local HF directory), exchanging tokens and
results through files. TransformerLens and the naive loop cost one full forward per patch, so
they run on an evenly spaced subset of at most --max-rows rows per sweep and their time is
scaled to the whole sweep (stated in the table); values are compared on those rows.

Times are process CPU seconds with --threads intra-op threads (default 1: on a shared box
CPU time stays stable while wall time does not); wall seconds are reported too.

FLOP floor: per patch, the FLOPs of recomputing only the blocks after the patch, only on the
positions it can reach, only the logits the metric reads (the last block computes keys/values
for every reachable position but the rest only for read positions; a patch that changes
nothing costs 0). The estimate of the floor's time uses the time per FLOP of a plain forward
of the same prompts; "achieved / floor" is the sweep's time over that estimate.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SWEEPS = ("resid_pre", "attn_head_out_all_pos", "attn_head_out_by_pos")
AXES = {"resid_pre": ("layer", "pos"), "attn_head_out_all_pos": ("layer", "head_index"),
        "attn_head_out_by_pos": ("layer", "pos", "head_index")}


# ============================================================== TransformerLens worker
def tl_worker(job_dir: str) -> None:
    """Runs inside .tl-bench: load TL 3.9.0 on the local weights, run the sampled sweeps."""
    import pandas as pd
    import torch

    job = torch.load(os.path.join(job_dir, "job.pt"))
    torch.set_num_threads(job["threads"])
    from transformers import AutoModelForCausalLM
    import transformer_lens.loading_from_pretrained as loading
    from transformer_lens import HookedTransformer, patching

    local = _hf_dir_with_architecture(job["model_dir"])
    hf = AutoModelForCausalLM.from_pretrained(local, dtype=torch.float32)
    cfg = loading.get_pretrained_model_config(local, hf_cfg=hf.config.to_dict(), fold_ln=True, device="cpu")
    want = hf.config.to_dict().get("rope_parameters", {}).get("rope_theta") or hf.config.to_dict().get("rope_theta")
    assert abs(cfg.rotary_base - want) < 1e-6, f"TL rotary_base {cfg.rotary_base} != HF rope_theta {want}"
    model = HookedTransformer(cfg)
    state = loading.get_pretrained_state_dict(local, cfg, hf)
    model.load_and_process_state_dict(state, fold_ln=True, center_writing_weights=True, center_unembed=True,
                                      fold_value_biases=True)
    model.eval()
    del hf
    tokens, clean_tokens, answers = job["tokens"], job["clean_tokens"], job["answers"]
    idx = torch.arange(tokens.shape[0])

    def metric(logits):
        last = logits[:, -1]
        return (last[idx, answers[:, 0]] - last[idx, answers[:, 1]]).mean()

    out = {"timings": {}, "values": {}}
    with torch.no_grad():
        _, cache = model.run_with_cache(clean_tokens)
        out["logits"] = model(tokens)
        cpu, wall = _timed(lambda: model(tokens), reps=3)
        out["timings"]["forward"] = {"cpu": cpu, "wall": wall}
    fns = {"resid_pre": patching.get_act_patch_resid_pre,
           "attn_head_out_all_pos": patching.get_act_patch_attn_head_out_all_pos,
           "attn_head_out_by_pos": patching.get_act_patch_attn_head_out_by_pos}
    for name, rows in job["rows"].items():
        df = pd.DataFrame(rows, columns=list(AXES[name]))
        c0, w0 = time.process_time(), time.perf_counter()
        vals = fns[name](model, tokens, cache, metric, index_axis_names=None, index_df=df)
        out["timings"][name] = {"cpu": time.process_time() - c0, "wall": time.perf_counter() - w0, "rows": len(rows)}
        out["values"][name] = vals.cpu()
    torch.save(out, os.path.join(job_dir, "tl_results.pt"))


def _hf_dir_with_architecture(src: str) -> str:
    """A temp copy of the HF dir (weights symlinked) whose config names its architecture."""
    tmp = tempfile.mkdtemp(prefix="tl-smollm2-")
    for f in os.listdir(src):
        if f != "config.json":
            os.symlink(os.path.join(src, f), os.path.join(tmp, f))
    cfg = json.load(open(os.path.join(src, "config.json")))
    cfg.setdefault("architectures", ["LlamaForCausalLM"])
    json.dump(cfg, open(os.path.join(tmp, "config.json"), "w"))
    return tmp


def _timed(fn, reps: int = 1):
    best_cpu = best_wall = float("inf")
    for _ in range(reps):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - w0)
    return best_cpu, best_wall


# ============================================================== prompts and metric
def make_prompts(model, n_pairs: int, digits: int, seed: int):
    """Seed-004 style: pairs "a x b = " / "b x a = "; corrupted = the list reversed."""
    import random

    import torch

    rng = random.Random(seed)
    lo, hi = 10 ** (digits - 1), 10**digits - 1
    while True:
        prompts, products = [], []
        for _ in range(n_pairs):
            a, b = rng.randint(lo, hi), rng.randint(lo, hi)
            prompts += [f"{a} x {b} = ", f"{b} x {a} = "]
            products += [a * b, a * b]
        corrupted = prompts[::-1]
        wrong = products[::-1]
        if all(str(p)[0] != str(w)[0] for p, w in zip(products, wrong)):
            break
    clean_tokens = model.to_tokens(prompts, prepend_bos=True)
    tokens = model.to_tokens(corrupted, prepend_bos=True)
    assert clean_tokens.shape == tokens.shape, "prompts must have equal token lengths"
    digit = lambda n: model.to_single_token(str(n)[0])  # noqa: E731
    answers = torch.tensor([[digit(p), digit(w)] for p, w in zip(products, wrong)])
    return prompts, clean_tokens, tokens, answers


# ============================================================== FLOP floor
class Flops:
    """Analytic FLOPs (2 per multiply-add) of the pieces of one SmolLM2-style block."""

    def __init__(self, cfg, B: int):
        self.B, self.L = B, cfg.n_layers
        d, H, dh = cfg.d_model, cfg.n_heads, cfg.d_head
        kv = cfg.n_key_value_heads or H
        self.qkv = 2 * d * (H + 2 * kv) * dh
        self.kv = 2 * d * 2 * kv * dh
        self.o = 2 * H * dh * d
        self.o_head = 2 * dh * d
        self.mlp = 2 * d * cfg.d_mlp * (3 if cfg.gated_mlp else 2)
        self.attn_per_key = 2 * 2 * H * dh  # scores + pattern @ v, per (query, key)
        self.unembed = 2 * d * cfg.d_vocab_out

    def block(self, p0: int, T: int) -> float:
        S = T - p0
        keys = sum(range(p0 + 1, T + 1))
        return self.B * (S * (self.qkv + self.o + self.mlp) + keys * self.attn_per_key)

    def last_block(self, p0: int, T: int, read: int) -> float:
        S = T - p0
        return self.B * (S * self.kv + (self.qkv - self.kv + self.o + self.mlp) + (read + 1) * self.attn_per_key)

    def downstream(self, first_layer: int, p0: int, T: int) -> float:
        """Blocks first_layer..L-1 on positions p0..T-1, reading only T-1, plus its logits."""
        if first_layer >= self.L:
            return self.B * self.unembed
        full = sum(self.block(p0, T) for _ in range(first_layer, self.L - 1))
        return full + self.last_block(p0, T, T - 1) + self.B * self.unembed

    def forward(self, T: int) -> float:
        return self.L * self.block(0, T) + self.B * T * self.unembed


def floor_flops(name: str, fl: Flops, cells, T: int) -> float:
    """Sum of per-patch floors; ``cells`` = (layer, p0 or -1, extent) per patch."""
    total = 0.0
    for layer, p0, n_pos in cells:
        if p0 < 0:
            continue
        if name == "resid_pre":
            total += fl.downstream(layer, p0, T)
            continue
        if layer == fl.L - 1:
            if p0 + n_pos - 1 < T - 1:
                continue  # the last block's output at earlier positions is never read
            n_pos = 1  # only the read position's W_O and MLP matter
        site = fl.B * n_pos * (fl.o_head + fl.mlp)  # the head's W_O, then the MLP, at the changed positions
        total += site + fl.downstream(layer + 1, p0, T)
    return total


def patch_cells(name, clean_cache, corr_cache, L, T, H):
    """(layer, first changed position, number of changed positions) of every patch, in sweep order."""
    import torch

    cells = []
    for layer in range(L):
        if name == "resid_pre":
            key = f"blocks.{layer}.hook_resid_pre"
            ne = (clean_cache[key] != corr_cache[key]).flatten(2).any(-1).any(0)  # [pos]
            cells += [(layer, p if bool(ne[p]) else -1, 1) for p in range(T)]
            continue
        key = f"blocks.{layer}.attn.hook_z"
        ne = (clean_cache[key] != corr_cache[key]).any(-1).any(0)  # [pos, head]
        if name == "attn_head_out_by_pos":
            cells += [(layer, p if bool(ne[p, h]) else -1, 1) for p in range(T) for h in range(H)]
        else:
            for h in range(H):
                hit = torch.nonzero(ne[:, h]).flatten()
                cells.append((layer, int(hit[0]) if hit.numel() else -1, T - int(hit[0]) if hit.numel() else 0))
    return cells


# ============================================================== main
def sample_rows(rows, k: int):
    if len(rows) <= k:
        return rows
    step = len(rows) / k
    return [rows[int(i * step)] for i in range(k)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--digits", type=int, default=3)
    ap.add_argument("--max-rows", type=int, default=150, help="rows per sweep for TL and the naive loop")
    ap.add_argument("--skip-tl", action="store_true")
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--tl-python", default=str(ROOT / ".tl-bench" / "bin" / "python"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_patching.json"))
    ap.add_argument("--tl-worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.tl_worker:
        return tl_worker(args.tl_worker)

    import pandas as pd
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT))  # run from a checkout without an editable install
    from lenswidget import HookedTransformer, patching
    from lenswidget.loading import default_model_dir
    from lenswidget.patching import attribution

    model = HookedTransformer.from_pretrained("SmolLM2-135M-Instruct", device="cpu")
    cfg = model.cfg
    L, H = cfg.n_layers, cfg.n_heads
    prompts, clean_tokens, tokens, answers = make_prompts(model, 4, args.digits, seed=0)
    B, T = tokens.shape
    print(f"SmolLM2-135M, {B} prompts x {T} tokens (e.g. {prompts[0]!r}), threads={args.threads}")
    idx = torch.arange(B)

    def plain_metric(logits):
        last = logits[:, -1]
        return (last[idx, answers[:, 0]] - last[idx, answers[:, 1]]).mean()

    def batched(logits):  # [runs, batch, 1, vocab] -> [runs]
        last = logits[:, :, -1]
        right = last[:, idx, answers[:, 0]]
        wrong = last[:, idx, answers[:, 1]]
        return (right - wrong).mean(-1)

    metric = patching.batched_metric(batched, positions=[-1])
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(clean_tokens)
        _, corr_cache = model.run_with_cache(tokens)
        fwd_cpu, fwd_wall = _timed(lambda: model(tokens), reps=3)
    fl = Flops(cfg, B)
    sec_per_flop = fwd_cpu / fl.forward(T)
    results = {"model": "SmolLM2-135M-Instruct", "batch": B, "pos": T, "threads": args.threads,
               "forward": {"cpu": fwd_cpu, "wall": fwd_wall, "gflop": fl.forward(T) / 1e9}, "sweeps": {}}

    all_rows = {}
    for name in SWEEPS:
        sizes = {"layer": L, "pos": T, "head_index": H}
        all_rows[name] = patching.make_df_from_ranges([sizes[a] for a in AXES[name]], AXES[name]).values.tolist()
    sampled = {name: sample_rows(rows, args.max_rows) for name, rows in all_rows.items()}

    tl = None
    if not args.skip_tl:
        if not Path(args.tl_python).exists():
            print(f"no TransformerLens venv at {args.tl_python}: run benchmarks/tl_env.sh (or pass --skip-tl)")
        else:
            job_dir = tempfile.mkdtemp(prefix="bench-patching-")
            torch.save({"tokens": tokens, "clean_tokens": clean_tokens, "answers": answers, "rows": sampled,
                        "threads": args.threads, "model_dir": str(default_model_dir())},
                       os.path.join(job_dir, "job.pt"))
            print("running TransformerLens 3.9.0 (subprocess) ...", flush=True)
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
            subprocess.run([args.tl_python, __file__, "--tl-worker", job_dir], check=True, env=env)
            tl = torch.load(os.path.join(job_dir, "tl_results.pt"))
            with torch.no_grad():
                results["tl_logits_max_abs_diff"] = float((model(tokens) - tl["logits"]).abs().max())
            results["tl_forward"] = tl["timings"]["forward"]

    for name in SWEEPS:
        fn = getattr(patching, f"get_act_patch_{name}")
        print(f"lenswidget {name} ...", flush=True)
        c0, w0 = time.process_time(), time.perf_counter()
        fast = fn(model, tokens, clean_cache, metric, verbose=False)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        if name == "resid_pre":
            fast_resid = fast
        n = len(all_rows[name])
        flat = fast.reshape(-1).cpu()
        rows = sampled[name]
        pos_in_full = [all_rows[name].index(r) for r in rows]
        entry = {"cells": n, "lenswidget": {"cpu": cpu, "wall": wall}}
        cells = patch_cells(name, clean_cache, corr_cache, L, T, H)
        floor = floor_flops(name, fl, cells, T)
        entry["floor_gflop"] = floor / 1e9
        entry["floor_est_cpu"] = floor * sec_per_flop
        entry["achieved_over_floor"] = cpu / (floor * sec_per_flop)
        entry["noop_cells"] = sum(1 for c in cells if c[1] < 0)
        if not args.skip_naive:
            df = pd.DataFrame(rows, columns=list(AXES[name]))
            print(f"naive loop {name} ({len(rows)} of {n} rows) ...", flush=True)
            c0, w0 = time.process_time(), time.perf_counter()
            naive = fn(model, tokens, clean_cache, plain_metric, index_df=df, method="naive", verbose=False)
            ncpu, nwall = time.process_time() - c0, time.perf_counter() - w0
            scale = n / len(rows)
            entry["naive"] = {"cpu": ncpu * scale, "wall": nwall * scale, "rows_run": len(rows)}
            entry["max_abs_diff_vs_naive"] = float((flat[pos_in_full] - naive.cpu()).abs().max())
            entry["speedup_vs_naive"] = ncpu * scale / cpu
        if tl is not None:
            t = tl["timings"][name]
            scale = n / t["rows"]
            entry["tl"] = {"cpu": t["cpu"] * scale, "wall": t["wall"] * scale, "rows_run": t["rows"]}
            entry["max_abs_diff_vs_tl"] = float((flat[pos_in_full] - tl["values"][name]).abs().max())
            entry["speedup_vs_tl"] = t["cpu"] * scale / cpu
        results["sweeps"][name] = entry

    print("lenswidget resid_pre with the plain (undeclared) metric ...", flush=True)
    c0, w0 = time.process_time(), time.perf_counter()
    plain = patching.get_act_patch_resid_pre(model, tokens, clean_cache, plain_metric, verbose=False)
    results["resid_pre_plain_metric"] = {
        "cpu": time.process_time() - c0, "wall": time.perf_counter() - w0,
        "max_abs_diff_vs_batched": float((plain - fast_resid).abs().max()),
    }

    print("attribution patching ...", flush=True)
    c0, w0 = time.process_time(), time.perf_counter()
    est = attribution.attribution_patch(model, tokens, clean_cache, plain_metric, sweeps=SWEEPS)
    attr = {"cpu": time.process_time() - c0, "wall": time.perf_counter() - w0, "pearson_r": {}}
    for name in SWEEPS:
        exact = getattr(patching, f"get_act_patch_{name}")(model, tokens, clean_cache, metric, verbose=False)
        attr["pearson_r"][name] = attribution.pearson(est[name].cpu(), exact.cpu())
    results["attribution"] = attr

    _print_table(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")


TARGETS = {"resid_pre": 5.0, "attn_head_out_by_pos": 4.0, "attn_head_out_all_pos": 2.5}


def _print_table(r) -> None:
    print(f"\nforward [{r['batch']}x{r['pos']}]: {r['forward']['cpu']:.3f} s CPU, {r['forward']['gflop']:.1f} GFLOP"
          + (f"; TransformerLens {r['tl_forward']['cpu']:.3f} s, logits max|diff| {r['tl_logits_max_abs_diff']:.1e}"
             if "tl_forward" in r else ""))
    head = (f"{'sweep':24} {'cells':>6} {'no-op':>6} {'lensw s':>8} {'naive s':>8} {'TL s':>8} {'xTL':>6} "
            f"{'target':>6} {'xnaive':>6} {'|d|TL':>8} {'|d|naive':>8} {'floor GF':>9} {'vs floor':>8}")
    print(head)
    print("-" * len(head))
    for name, e in r["sweeps"].items():
        naive = e.get("naive", {}).get("cpu", float("nan"))
        tl = e.get("tl", {}).get("cpu", float("nan"))
        print(f"{name:24} {e['cells']:6d} {e['noop_cells']:6d} {e['lenswidget']['cpu']:8.1f} {naive:8.1f} {tl:8.1f} "
              f"{e.get('speedup_vs_tl', float('nan')):6.1f} {TARGETS[name]:6.1f} "
              f"{e.get('speedup_vs_naive', float('nan')):6.1f} {e.get('max_abs_diff_vs_tl', float('nan')):8.1e} "
              f"{e.get('max_abs_diff_vs_naive', float('nan')):8.1e} {e['floor_gflop']:9.0f} "
              f"{e['achieved_over_floor']:8.2f}")
    if "resid_pre_plain_metric" in r:
        p = r["resid_pre_plain_metric"]
        print(f"resid_pre with a plain metric (full logits rebuilt per run): {p['cpu']:.1f} s CPU "
              f"(max|diff| vs batched {p['max_abs_diff_vs_batched']:.1e})")
    a = r["attribution"]
    rs = ", ".join(f"{k} r={v:.3f}" for k, v in a["pearson_r"].items())
    print(f"attribution patching (all three sweeps, one backward): {a['cpu']:.2f} s CPU; {rs}")
    rows = {n: e.get("tl", {}).get("rows_run") for n, e in r["sweeps"].items()}
    print(f"TL / naive times scaled from the rows run: {rows} (one full forward per patch either way)")


if __name__ == "__main__":
    main()

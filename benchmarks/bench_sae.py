"""SAEs on SmolLM2-135M: the cost of running with an SAE, and of feature attribution patching.

    .venv/bin/python benchmarks/bench_sae.py            # table + benchmarks/results/bench_sae.json
    .venv/bin/python benchmarks/bench_sae.py --quick    # fewer repetitions

SAE: the default SAE (TopK, d_sae 2048, ``blocks.12.hook_resid_post``; trained by setup), or
``--random`` a random SAE of the same shape. Prompts: 8 of 33 tokens, "... the capital of
{country} is", corrupted = the country of its pair (France/Japan, Italy/Spain, ...); metric =
mean logit difference between the two capitals.

1. **Overhead of ``run_with_cache_with_saes``** (error term on) over a plain ``run_with_cache``
   of the same prompts, both caching every hook point (median and p90 over ``--reps``). When the
   TransformerLens 3.9 + SAELens venv exists (``benchmarks/tl_env.sh``), SAELens's
   ``HookedSAETransformer`` runs the same measurement on the same weights in a subprocess, so
   both overheads are ratios measured the same way.
2. **Feature attribution patching** (every feature x position, error term included) in
   forward-equivalents: its time over a plain forward, without and with the clean
   ``run_with_cache_with_saes`` it needs. Target: <= 4.
3. Its **Pearson r with exact patching** on a sample of 64 feature x position entries (half
   the largest estimates, half random among entries whose clean and corrupted activations
   differ), and the time per exact patch.

Times are process CPU seconds with ``--threads`` intra-op threads (default 1: on a shared box CPU
time is the stable measure); wall seconds are reported too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_CONTEXT = ("In our geography lesson this morning the teacher asked the class a few easy questions about the world, "
            "and everybody knew that the capital of {} is")
_PAIRS = ["France", "Japan", "Italy", "Spain", "Egypt", "Greece", "Peru", "Kenya"]
CLEAN = [_CONTEXT.format(c) for c in _PAIRS]
CORRUPT = [_CONTEXT.format(_PAIRS[i ^ 1]) for i in range(len(_PAIRS))]  # each pair swapped
ANSWERS = [" Paris", " Tokyo", " Rome", " Madrid", " Cairo", " Athens", " Lima", " Nairobi"]


def _timed(fn, reps):
    cpu, wall = [], []
    for _ in range(reps):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return cpu, wall


def _stats(xs):
    xs = sorted(xs)
    return {"median": statistics.median(xs), "p90": xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))],
            "n": len(xs)}


# ============================================================== SAELens worker (TL venv)
def saelens_worker(job_dir: str) -> None:
    import torch
    import transformer_lens.loading_from_pretrained as loading
    from sae_lens import SAE, HookedSAETransformer
    from transformers import AutoModelForCausalLM

    job = json.loads((Path(job_dir) / "job.json").read_text())
    torch.set_num_threads(job["threads"])
    hf = AutoModelForCausalLM.from_pretrained(job["model_dir"], dtype=torch.float32)
    cfg = loading.get_pretrained_model_config(job["model_dir"], hf_cfg=hf.config.to_dict(), fold_ln=True, device="cpu")
    cfg.tokenizer_name = None
    model = HookedSAETransformer(cfg)
    model.load_and_process_state_dict(loading.get_pretrained_state_dict(job["model_dir"], cfg, hf), fold_ln=True,
                                      center_writing_weights=True, center_unembed=True, fold_value_biases=True)
    model.eval()
    del hf
    sae = SAE.load_from_disk(job["sae_dir"])
    tokens = torch.tensor(job["tokens"])
    out = {}
    with torch.no_grad():
        model.run_with_cache(tokens)
        out["plain"] = _timed(lambda: model.run_with_cache(tokens), job["reps"])
        model.run_with_cache_with_saes(tokens, saes=[sae], use_error_term=True)
        out["sae"] = _timed(lambda: model.run_with_cache_with_saes(tokens, saes=[sae], use_error_term=True), job["reps"])
    (Path(job_dir) / "out.json").write_text(json.dumps(out))


def _hf_dir_with_architecture(src: Path) -> str:
    tmp = tempfile.mkdtemp(prefix="tl-smollm2-")
    for f in os.listdir(src):
        if f != "config.json":
            os.symlink(src / f, os.path.join(tmp, f))
    cfg = json.loads((src / "config.json").read_text())
    cfg.setdefault("architectures", ["LlamaForCausalLM"])
    Path(tmp, "config.json").write_text(json.dumps(cfg))
    return tmp


def run_saelens(model_dir: Path, sae_dir: Path, tokens, reps: int, threads: int):
    venv = Path(os.environ.get("TL_BENCH_VENV") or ROOT / ".tl-bench")
    if not (venv / "bin" / "python").exists():
        return None, f"no TransformerLens/SAELens venv at {venv} (bash benchmarks/tl_env.sh)"
    job = tempfile.mkdtemp(prefix="bench-sae-")
    Path(job, "job.json").write_text(json.dumps({"model_dir": _hf_dir_with_architecture(model_dir), "sae_dir": str(sae_dir),
                                                 "tokens": tokens.tolist(), "reps": reps, "threads": threads}))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([str(venv / "bin" / "python"), __file__, "--saelens-worker", job], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return None, "SAELens worker failed: " + proc.stderr[-800:]
    return json.loads(Path(job, "out.json").read_text()), None


# ============================================================== main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help="5 repetitions, 32 sampled exact patches")
    ap.add_argument("--random", action="store_true", help="a random SAE of the default's shape (no training)")
    ap.add_argument("--no-saelens", action="store_true")
    ap.add_argument("--saelens-worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.saelens_worker:
        saelens_worker(args.saelens_worker)
        return
    import torch

    from lenswidget import HookedSAETransformer, SAE
    from lenswidget.loading import default_model_dir
    from lenswidget.sae import compare_feature_patching, feature_attribution_patch
    from lenswidget.sae.default import DEFAULT_HOOK, default_sae_dir

    torch.set_num_threads(args.threads)
    reps = 5 if args.quick else args.reps
    model = HookedSAETransformer.from_pretrained("SmolLM2-135M-Instruct", device="cpu").eval()
    if args.random:
        sae_dir = Path(tempfile.mkdtemp(prefix="bench-sae-random-"))
        SAE.from_dict({"d_in": 576, "d_sae": 2048, "architecture": "topk", "k": 32,
                       "metadata": {"hook_name": DEFAULT_HOOK}}, seed=0).save_model(sae_dir)
    else:
        sae_dir = default_sae_dir()
    sae = SAE.load_from_disk(sae_dir)
    clean, corrupt = model.to_tokens(CLEAN), model.to_tokens(CORRUPT)
    assert clean.shape == corrupt.shape, (clean.shape, corrupt.shape)
    answers = torch.tensor([model.to_single_token(a) for a in ANSWERS])
    wrong = answers.view(-1, 2).flip(-1).reshape(-1)  # each pair's other capital
    idx = torch.arange(len(answers))

    def metric(logits):
        last = logits[:, -1]
        return (last[idx, answers] - last[idx, wrong]).mean()

    res = {"tokens": list(clean.shape), "sae": str(sae_dir), "threads": args.threads, "reps": reps}
    with torch.no_grad():
        model(clean)
        fwd = _timed(lambda: model(clean), reps)
        model.run_with_cache(clean)
        plain = _timed(lambda: model.run_with_cache(clean), reps)
        model.run_with_cache_with_saes(clean, saes=[sae], use_error_term=True)
        with_sae = _timed(lambda: model.run_with_cache_with_saes(clean, saes=[sae], use_error_term=True), reps)
    res["forward"] = {"cpu": _stats(fwd[0]), "wall": _stats(fwd[1])}
    res["run_with_cache"] = {"cpu": _stats(plain[0]), "wall": _stats(plain[1])}
    res["run_with_cache_with_saes"] = {"cpu": _stats(with_sae[0]), "wall": _stats(with_sae[1])}
    overhead = res["run_with_cache_with_saes"]["cpu"]["median"] / res["run_with_cache"]["cpu"]["median"]
    res["overhead_ratio"] = overhead

    _, clean_cache = model.run_with_cache_with_saes(clean, saes=[sae], use_error_term=True)
    attr = _timed(lambda: feature_attribution_patch(model, sae, corrupt, clean_cache, metric), reps)
    clean_run = _timed(lambda: model.run_with_cache_with_saes(clean, saes=[sae], use_error_term=True,
                                                             names_filter=lambda n: ".hook_sae_" in n), reps)
    f = res["forward"]["cpu"]["median"]
    res["attribution_patching"] = {"cpu": _stats(attr[0]), "wall": _stats(attr[1]),
                                   "forward_equivalents": statistics.median(attr[0]) / f,
                                   "forward_equivalents_with_clean_run":
                                       (statistics.median(attr[0]) + statistics.median(clean_run[0])) / f,
                                   "entries": int(clean.shape[1] * sae.cfg.d_sae) + int(clean.shape[1])}
    est = feature_attribution_patch(model, sae, corrupt, clean_cache, metric)
    n = 32 if args.quick else 64
    c0 = time.process_time()
    cmp = compare_feature_patching(model, sae, corrupt, clean_cache, metric, n=n, estimate=est)
    exact_cpu = time.process_time() - c0
    res["exact_sample"] = {"n": n, "pearson": cmp["pearson"], "cpu_per_patch": exact_cpu / n,
                           "top": [(p, f_, float(e), float(x)) for (p, f_), e, x in
                                   zip(cmp["entries"][:8], cmp["estimate"][:8], cmp["exact"][:8])]}
    if not args.no_saelens:
        sl, why = run_saelens(default_model_dir(), sae_dir, clean, reps, args.threads)
        if sl is None:
            res["saelens"] = {"skipped": why}
        else:
            res["saelens"] = {"run_with_cache": _stats(sl["plain"][0]), "run_with_cache_with_saes": _stats(sl["sae"][0])}
            res["saelens"]["overhead_ratio"] = (res["saelens"]["run_with_cache_with_saes"]["median"]
                                                / res["saelens"]["run_with_cache"]["median"])

    def row(name, s):
        return f"| {name} | {s['median']:.3f} s | {s['p90']:.3f} s |"

    print(f"\nSmolLM2-135M, tokens {list(clean.shape)}, SAE {sae.cfg.architecture} d_sae={sae.cfg.d_sae} at "
          f"{sae.cfg.hook_name}; CPU seconds, {args.threads} thread(s), {reps} reps\n")
    print("| measurement | median | p90 |\n| --- | --- | --- |")
    print(row("forward", res["forward"]["cpu"]))
    print(row("run_with_cache", res["run_with_cache"]["cpu"]))
    print(row("run_with_cache_with_saes (error term)", res["run_with_cache_with_saes"]["cpu"]))
    print(row("feature attribution patching", res["attribution_patching"]["cpu"]))
    print(f"\noverhead of run_with_cache_with_saes over run_with_cache: {overhead:.3f}x")
    if "overhead_ratio" in res.get("saelens", {}):
        print(f"SAELens 6.54.12 on TransformerLens 3.9, same measurement: {res['saelens']['overhead_ratio']:.3f}x "
              f"(its run_with_cache_with_saes: {res['saelens']['run_with_cache_with_saes']['median']:.3f} s, "
              f"lenswidget's {res['run_with_cache_with_saes']['cpu']['median']:.3f} s)")
    elif "saelens" in res:
        print(f"SAELens: skipped ({res['saelens']['skipped']})")
    ap_ = res["attribution_patching"]
    print(f"attribution patching of {ap_['entries']} entries: {ap_['forward_equivalents']:.2f} forward-equivalents "
          f"({ap_['forward_equivalents_with_clean_run']:.2f} with the clean run; target <= 4)")
    print(f"Pearson r with exact patching on {n} sampled entries: {cmp['pearson']:.3f} "
          f"(exact: {res['exact_sample']['cpu_per_patch'] * 1000:.0f} ms CPU per patch)")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "bench_sae.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()

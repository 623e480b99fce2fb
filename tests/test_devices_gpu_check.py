"""benchmarks/gpu_check_devices.py in its CPU mode (CI has no GPU): it must run, find a
cpu + disk split equal to the whole model, and write its JSON report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_script_cpu_mode(tmp_path):
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check_devices.py"), "--cpu", "--size", "tiny",
                          "--out", str(tmp_path), "--model-root", str(tmp_path / "models")],
                         env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check_devices.json").read_text())
    assert report["mode"] == "cpu" and report["ok"] is True
    split = report["splits"]["cpu+disk"]
    assert "disk: " in split["placement"] and "cpu: " in split["placement"]
    assert split["cache_keys_equal"] and split["cache_on_cpu"] and split["results_device"] == "cpu"
    assert max(split[k]["max_rel"] for k in ("logits", "hooked_logits", "sweep_resid_pre")) <= 1e-4
    if sys.platform.startswith("linux"):
        mem = report["load_memory"]
        assert mem["lenswidget"]["weight_bytes"] > 0 and mem["hf"]["weight_bytes"] > 0 and "ok" in mem

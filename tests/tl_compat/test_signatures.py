"""Every public signature of the TransformerLens 3.9 API surface, against lenswidget's.

``signatures.py`` lists the members of HookedTransformer, ActivationCache, HookPoint,
HookedRootModule, FactoredMatrix, utils, patching and tools.analysis, with their parameters
(name, kind, default), in both libraries. Each TL member must exist in lenswidget, and each
TL parameter must exist with the same default, TL's positional parameters in the same order,
except for the differences below, which docs/compat.md lists with their reasons.
"""

from __future__ import annotations

import pytest

# Members TL 3.9 has and lenswidget does not provide (docs/compat.md, "Not provided").
NOT_PROVIDED = {
    "ActivationCache.compute_ssm_effective_attention", "ActivationCache.compute_ssm_state",
    "ActivationCache.ssm_layers", "HookPoint.enable_reshape",
    "HookedTransformer.fill_missing_keys", "HookedTransformer.get_pos_offset", "HookedTransformer.get_residual",
    "utils.clear_huggingface_cache", "utils.download_file_from_hf", "utils.get_dataset",
    "patching.ActivationCache", "patching.HookedTransformer",  # TL's module-level imports, not API
}
NOT_PROVIDED_PREFIXES = ("tools.analysis.",)  # TL 3.9's newer analyses; lenswidget's are listed below
ANALYSIS_PROVIDED = {"tools.analysis.direct_logit_attribution", "tools.analysis.DirectLogitAttribution",
                     "tools.analysis.get_act_patch_direct_path", "tools.analysis.get_act_patch_direct_path_all_sources"}

# Parameters that differ on purpose (docs/compat.md, "Deliberate differences").
PARAM_DIFFERENCES = {
    "HookedTransformer.to": "accepts nn.Module.to's arguments (*args, **kwargs), a superset of TL's",
}


@pytest.fixture(scope="module")
def both(tl_results):
    from tests.tl_compat.signatures import dump

    return tl_results["__signatures__"], dump("lenswidget")


def _expected_missing(name: str) -> bool:
    if name in NOT_PROVIDED:
        return True
    return name.startswith(NOT_PROVIDED_PREFIXES) and name not in ANALYSIS_PROVIDED


def test_every_transformer_lens_member_exists(both):
    tl, lw = both
    missing = sorted(k for k in tl if k not in lw and not _expected_missing(k))
    assert not missing, f"missing in lenswidget (add them, or list them in docs/compat.md and here): {missing}"
    assert all(k in tl for k in ANALYSIS_PROVIDED), "tools.analysis names changed in TL"
    stale = sorted(k for k in NOT_PROVIDED if k not in tl or k in lw)
    assert not stale, f"NOT_PROVIDED entries that are no longer true: {stale}"


def test_every_transformer_lens_parameter_matches(both):
    tl, lw = both
    problems = []
    for name, entry in sorted(tl.items()):
        if name not in lw or name in PARAM_DIFFERENCES or entry.get("params") is None:
            continue
        ours = lw[name].get("params")
        if ours is None:
            problems.append(f"{name}: no signature")
            continue
        mine = {p[0]: p for p in ours}
        var_kw = any(p[1] == "VAR_KEYWORD" for p in ours)
        for pname, kind, default in entry["params"]:
            if kind in ("VAR_POSITIONAL", "VAR_KEYWORD"):
                continue
            if pname not in mine:
                if not var_kw:
                    problems.append(f"{name}: no parameter {pname!r}")
                else:
                    problems.append(f"{name}: {pname!r} only through **kwargs")
                continue
            if mine[pname][2] != default:
                problems.append(f"{name}({pname}=...): default {mine[pname][2]!r}, TL {default!r}")
        tl_pos = [p[0] for p in entry["params"] if p[1] in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")]
        our_pos = [p[0] for p in ours if p[1] in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")]
        if our_pos[: len(tl_pos)] != tl_pos:
            problems.append(f"{name}: positional order {our_pos} vs TL {tl_pos}")
    assert not problems, "\n".join(problems)


"""Several devices through accelerate: the placement plan, and a real split on this machine
(some blocks on the CPU, the rest offloaded to disk with ``offload_folder``) that must equal
the whole model through the forward, hooks, the cache, a patching sweep, generation, weight
accessors and a widget.

CI has no GPU, so GPU plans are computed with virtual ``max_memory`` (accelerate's planner only
reads sizes); ``benchmarks/gpu_check_devices.py`` checks a real cuda + cpu split on a GPU.
"""

from __future__ import annotations

import pytest
import torch

from conftest import make_tiny_hf
from lenswidget import patching
from lenswidget.errors import ConfigError, InvalidOptionError, UnknownNameError
from lenswidget.loading.placement import model_units, plan_placement
from tests.models import tiny_tokenizer

N_LAYERS = 4
SPLIT = {"embed": "cpu", "blocks.0": "cpu", "blocks.1": "disk", "blocks.2": "cpu", "blocks.3": "disk",
         "ln_final": "cpu", "unembed": "disk"}


def _ht():
    from lenswidget import HookedTransformer

    return HookedTransformer


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def pair(request, tmp_path_factory):
    """(whole model, the same model split over cpu + disk) from one saved checkpoint."""
    hf = make_tiny_hf(request.param, vocab_size=300, **({"n_layer": N_LAYERS} if request.param == "gpt2"
                                                        else {"num_hidden_layers": N_LAYERS}))
    d = tmp_path_factory.mktemp(f"ckpt-{request.param}")
    hf.save_pretrained(d)
    tok = tiny_tokenizer()
    whole = _ht().from_pretrained(str(d), device="cpu", tokenizer=tok)
    dm = dict(SPLIT, **({"pos_embed": "cpu"} if request.param == "gpt2" else {}))
    split = _ht().from_pretrained(str(d), device="cpu", tokenizer=tok, device_map=dm,
                                  offload_folder=str(tmp_path_factory.mktemp("offload")))
    return whole, split


def same(a, b):
    """Equal up to float rounding (weights read back from disk sit at other addresses, which
    may change how a GEMM kernel splits its sums); in practice they are bit-identical."""
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-5, equal_nan=True)
    return True


def _tokens(seed=0, batch=2, pos=7):
    return torch.randint(3, 300, (batch, pos), generator=torch.Generator().manual_seed(seed))


def _meta_model(family="llama", n_layers=8, d_model=64):
    from lenswidget.config import HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=n_layers, d_model=d_model, n_ctx=32, n_heads=4, d_vocab=1000,
                                  act_fn="gelu", normalization_type="LN", device="meta",
                                  positional_embedding_type="standard" if family == "gpt2" else "rotary")
    return _ht()(cfg)


# ------------------------------------------------------------------ the plan

def test_plan_from_a_dict_with_defaults_and_prefixes():
    model = _meta_model(n_layers=3)
    p = plan_placement(model, device_map={"": "cpu", "blocks": "disk", "blocks.2": 0, "unembed": "cuda"},
                       offload_folder="/tmp/x")
    assert p.devices == {"embed": "cpu", "blocks.0": "disk", "blocks.1": "disk", "blocks.2": "cuda:0",
                         "ln_final": "cpu", "unembed": "cuda:0"}
    assert p.main == "cuda:0" and p.is_split
    # accelerate's rules: with a GPU in the map, cpu and disk modules are offloaded and run on it
    assert p.offloaded("embed") and p.offloaded("blocks.0") and not p.offloaded("blocks.2")
    assert p.execution("blocks.0") == torch.device("cuda:0")
    p = plan_placement(model, device_map={"": "cpu", "blocks.1": "disk"}, offload_folder="/tmp/x")
    # no GPU: everything runs on the CPU; disk weights are mapped into memory, no hook needed
    assert p.main == "cpu" and p.is_split and not any(p.offloaded(u) for u in p.devices)
    assert p.execution("blocks.1") == p.weight_device("blocks.1") == torch.device("cpu")
    assert plan_placement(model) is None  # plain one-device load


def test_plan_errors_name_the_problem():
    model = _meta_model(n_layers=3)
    with pytest.raises(UnknownNameError, match="blocks.1"):
        plan_placement(model, device_map={"embed": "cpu", "blocks.1x": "cpu"})
    with pytest.raises(ConfigError, match=r"blocks.0-2, ln_final"):
        plan_placement(model, device_map={"embed": "cpu", "unembed": "cpu"})
    with pytest.raises(InvalidOptionError, match="cuda:N"):
        plan_placement(model, device_map={"": "gpu0"})
    with pytest.raises(ConfigError, match="offload_folder"):
        plan_placement(model, device_map={"": "cpu", "blocks.2": "disk"})
    with pytest.raises(ConfigError, match="either n_devices or device_map"):
        plan_placement(model, device_map="auto", n_devices=2)
    with pytest.raises(ConfigError, match="max_memory"):
        plan_placement(model, max_memory={"cpu": "1GB"})
    with pytest.raises(InvalidOptionError, match="n_devices"):
        plan_placement(model, n_devices=0)
    if torch.cuda.device_count() < 2:
        with pytest.raises(ConfigError, match="n_devices=2 needs 2 CUDA devices"):
            plan_placement(model, n_devices=2)
    gpt2 = _meta_model("gpt2", n_layers=2)
    assert "pos_embed" in model_units(gpt2)
    with pytest.raises(ConfigError, match="pos_embed"):
        plan_placement(gpt2, device_map={"": "cpu", "embed": 0, "pos_embed": "cpu"})
    assert plan_placement(gpt2, device_map={"": "cpu", "embed": 0}).devices["pos_embed"] == "cuda:0"


def test_auto_plan_over_virtual_gpus_places_whole_blocks_in_order():
    """accelerate's balanced plan over two (virtual) GPUs: no GPU is needed to plan."""
    model = _meta_model(n_layers=8, d_model=128)
    per_block = sum(p.numel() for p in model.blocks[0].parameters()) * 4
    total = sum(p.numel() for p in model.parameters()) * 4
    for kwargs in ({"device_map": "auto"}, {"n_devices": 2}):
        p = plan_placement(model, max_memory={0: total, 1: total, "cpu": total}, **kwargs)
        devs = [p.devices[f"blocks.{i}"] for i in range(8)]
        assert set(devs) == {"cuda:0", "cuda:1"}, devs
        assert devs == sorted(devs)  # blocks 0..k on cuda:0, the rest on cuda:1
        assert p.devices["embed"] == "cuda:0" and p.devices["unembed"] == "cuda:1" and p.main == "cuda:0"
    # little GPU memory: the rest goes to the CPU, then to disk (offloaded, run on cuda:0)
    p = plan_placement(model, device_map="sequential", max_memory={0: 3 * per_block, "cpu": 2 * per_block},
                       offload_folder="/tmp/x")
    assert {"cuda:0", "cpu", "disk"} <= set(p.devices.values())
    assert all(p.execution(u) == torch.device("cuda:0") for u in p.devices)
    if not torch.cuda.is_available():
        from lenswidget.loading.placement import check_available

        with pytest.raises(ConfigError, match="CUDA device"):
            check_available(p)


# ------------------------------------------------------------------ a real cpu + disk split

def test_split_model_records_its_placement(pair):
    whole, split = pair
    assert split.hf_device_map == {**SPLIT, **({"pos_embed": "cpu"} if "pos_embed" in split.hf_device_map else {})}
    # disk blocks: their weights are memory-mapped from the offload folder (accelerate's format)
    from accelerate.utils import load_offloaded_weight

    folder = split._placement.offload_folder
    import json, os
    index = json.load(open(os.path.join(folder, "index.json")))
    assert {k.split(".")[0] + "." + k.split(".")[1] for k in index if k.startswith("blocks")} == {"blocks.1", "blocks.3"}
    info = index["blocks.1.attn.W_Q"]
    stored = load_offloaded_weight(os.path.join(folder, "blocks.1.attn.W_Q.dat"), info)
    W_Q = split.blocks[1].attn.W_Q
    assert torch.equal(stored.permute(*[info["order"].index(d) for d in range(3)]), W_Q)
    assert torch.equal(W_Q, whole.blocks[1].attn.W_Q) and W_Q.stride() == whole.blocks[1].attn.W_Q.stride()
    with pytest.raises(ConfigError, match="several devices"):
        split.to("cpu")
    assert "_placement" not in whole.__dict__


def test_split_forward_and_cache_equal_the_whole_model(pair):
    whole, split = pair
    toks = _tokens()
    with torch.no_grad():
        ref_logits, ref_cache = whole.run_with_cache(toks)
        logits, cache = split.run_with_cache(toks)
        assert same(logits, ref_logits) and same(split(toks), whole(toks))
        assert sorted(cache.keys()) == sorted(ref_cache.keys())
        for k in ref_cache.keys():
            assert same(cache[k], ref_cache[k]), k
        assert same(split(toks, return_type="loss"), whole(toks, return_type="loss"))
        mid = split(toks, stop_at_layer=2)
        assert same(mid, whole(toks, stop_at_layer=2))
        assert same(split(mid, start_at_layer=2), whole(mid, start_at_layer=2))
        # the cache device is the caller's choice (meta: no data, but every tensor moved there)
        for kw in ({"device": "meta"}, {"cache_device": "meta"}):
            _, on_meta = split.run_with_cache(toks, names_filter=lambda n: "resid" in n, **kw)
            assert len(on_meta) == 3 * N_LAYERS and all(v.device.type == "meta" for v in on_meta.values())


def test_split_hooks_equal_the_whole_model_and_are_removed(pair):
    whole, split = pair
    toks = _tokens(1)

    def ablate_head(z, hook):
        z[:, :, 1] = 0
        return z

    hooks = [("blocks.1.attn.hook_z", ablate_head), ("blocks.3.hook_mlp_out", lambda x, hook: x * 0.5)]
    with torch.no_grad():
        ref = whole.run_with_hooks(toks, fwd_hooks=hooks)
        out = split.run_with_hooks(toks, fwd_hooks=hooks)
    assert same(out, ref) and (out - whole(toks)).abs().max() > 1e-3
    assert not any(hp.fwd_hooks for hp in split.hook_dict.values())


def test_split_patching_sweep_equals_the_whole_model(pair):
    whole, split = pair
    clean, corrupted = _tokens(2, pos=6), _tokens(2, pos=6)
    corrupted[:, 2:4] = _tokens(3, pos=2)
    with torch.no_grad():
        _, cache = whole.run_with_cache(clean)
        _, split_cache = split.run_with_cache(clean)

    def metric(logits):
        return (logits[:, -1, 5] - logits[:, -1, 7]).mean()

    for sweep in (patching.get_act_patch_resid_pre, patching.get_act_patch_attn_head_out_all_pos):
        got = sweep(split, corrupted, split_cache, metric, verbose=False)  # the hook-based path
        same(got, sweep(whole, corrupted, cache, metric, verbose=False, method="hooks"))
        # and the unsplit model's default (fast, prefix-reusing) engine, to its usual tolerance
        torch.testing.assert_close(got, sweep(whole, corrupted, cache, metric, verbose=False), rtol=0, atol=1e-4)
    assert got.shape == (N_LAYERS, whole.cfg.n_heads)


def test_split_generate_and_weights_equal_the_whole_model(pair):
    whole, split = pair
    prompt = _tokens(4, batch=1, pos=4)
    kw = dict(max_new_tokens=5, do_sample=False, stop_at_eos=False, verbose=False)
    assert torch.equal(split.generate(prompt, use_past_kv_cache=True, **kw),
                       whole.generate(prompt, use_past_kv_cache=True, **kw))
    for name in ("W_U", "b_U", "W_E", "W_Q", "W_K", "W_O", "W_in", "b_out"):
        a, b = getattr(split, name), getattr(whole, name)
        assert b.device.type == "cpu" and torch.equal(a, b), name  # the same numbers, read back


def test_widgets_on_a_split_model(pair):
    from lenswidget.widgets import attention, codec
    from lenswidget.widgets.residual import residual

    whole, split = pair
    prompts = ["The cat sat on the", "The dog sat on the"]
    with torch.no_grad():
        a, b = residual(split, prompts, " on"), residual(whole, prompts, " on")
        assert set(a.data) == set(b.data)
        for k, v in b.data.items():
            if isinstance(v, torch.Tensor):
                same(a.data[k], v)
        pa, pb = attention(split, prompts[0]), attention(whole, prompts[0])
        ta, tb = codec.decode(pa.thumbs), codec.decode(pb.thumbs)
        assert ta.shape == tb.shape and ta.shape[0] >= N_LAYERS and (abs(ta - tb) <= 1e-2).all()


def test_auto_device_map_with_small_cpu_memory_offloads_to_disk(tmp_path):
    """accelerate's own plan: what does not fit max_memory['cpu'] goes to offload_folder."""
    hf = make_tiny_hf("gemma", num_hidden_layers=N_LAYERS, vocab_size=300)
    hf.save_pretrained(tmp_path / "m")
    whole = _ht().from_pretrained(str(tmp_path / "m"), device="cpu")
    block = sum(p.numel() for p in whole.blocks[0].parameters()) * 4
    embed = whole.embed.W_E.numel() * 4
    split = _ht().from_pretrained(str(tmp_path / "m"), device_map="auto", offload_folder=str(tmp_path / "off"),
                                  max_memory={"cpu": embed + 3 * block})
    devices = set(split.hf_device_map.values())
    assert devices == {"cpu", "disk"}, split.hf_device_map
    assert (tmp_path / "off" / "index.json").is_file()
    toks = _tokens(5, pos=9)
    with torch.no_grad():
        assert same(split(toks), whole(toks))
    # everything fits: an ordinary one-device model, as HF does
    plain = _ht().from_pretrained(str(tmp_path / "m"), device_map="auto")
    assert "_placement" not in plain.__dict__ and plain.cfg.device == "cpu"


def test_offload_hook_moves_weights_for_each_forward_and_puts_them_back():
    """The hook used for CPU/disk units of a GPU map, exercised on the CPU: during a forward the
    block runs on parameters the hook placed (accelerate's set_module_tensor_to_device), and the
    block's own tensors are its parameters again afterwards."""
    from lenswidget.loading.placement import attach_offload_hook

    hf = make_tiny_hf("llama", vocab_size=300)
    whole = _ht().from_pretrained("tiny", hf_model=hf, device="cpu")
    hooked = _ht().from_pretrained("tiny", hf_model=hf, device="cpu")
    before = {k: v.data_ptr() for k, v in hooked.blocks[1].state_dict().items()}
    attach_offload_hook(hooked.blocks[1], torch.device("cpu"))
    seen = {}

    def spy(x, hook):
        seen["param"] = hooked.blocks[1].attn.W_Q  # the parameter during the forward
        return x

    toks = _tokens(6)
    with torch.no_grad():
        out = hooked.run_with_hooks(toks, fwd_hooks=[("blocks.1.hook_resid_mid", spy)])
        same(out, whole(toks))
        _, cache = hooked.run_with_cache(toks)
        _, ref = whole.run_with_cache(toks)
    assert all(torch.equal(cache[k], ref[k]) for k in ref.keys() if "attn_scores" not in k)
    assert isinstance(seen["param"], torch.nn.Parameter)
    assert {k: v.data_ptr() for k, v in hooked.blocks[1].state_dict().items()} == before

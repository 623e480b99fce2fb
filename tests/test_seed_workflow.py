"""Seed 004's notebook workflow on SmolLM2-135M-Instruct, using only lenswidget.

The notebook studies multiplication on Qwen2.5; SmolLM2 is far smaller, so the task here is
a capital-city lookup it gets right ("The capital of France is" -> " Paris"), all prompts 6
tokens with BOS. Cells keep the notebook's code (only the import changes); patching loops
are cut to a few layers/heads so the file runs in seconds. Plots become assertions on
shapes, labels and identities.
"""

from functools import partial

import einops
import numpy as np
import pytest
import torch
from einops import einsum

import lenswidget.utils as utils
from lenswidget import ActivationCache, FactoredMatrix, HookedTransformer  # noqa: F401  (notebook imports)
from lenswidget.hook_points import HookPoint  # noqa: F401

pytestmark = pytest.mark.smollm2

PAIRS = [("France", " Paris"), ("Italy", " Rome"), ("Spain", " Madrid"), ("Germany", " Berlin")]
# The patching loops visit only these (a CPU forward pass of SmolLM2 is the unit of cost here)
RESID_LAYERS, RESID_POSITIONS = (0, 29), (3, 4, 5)
LAYERS, HEADS = (14,), (0, 4)


@pytest.fixture(scope="module", autouse=True)
def no_grad():
    # notebook: torch.set_grad_enabled(False), undone after this module
    before = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    yield
    torch.set_grad_enabled(before)


def logits_to_ave_logit_diff(logits, answer_tokens, per_prompt=False):
    # Only the final logits are relevant for the answer
    final_logits = logits[:, -1, :]
    # answer_tokens shape is [batch_size, 2, token_length]
    _, _, token_length = answer_tokens.shape
    all_token_logit_diffs = []
    for i in range(token_length):
        answer_tokens_at_pos = answer_tokens[:, :, i]
        answer_logits = final_logits.gather(dim=-1, index=answer_tokens_at_pos)
        all_token_logit_diffs.append(answer_logits[:, 0] - answer_logits[:, 1])
    answer_logit_diff = torch.stack(all_token_logit_diffs, dim=1).mean(dim=1)
    return answer_logit_diff if per_prompt else answer_logit_diff.mean()


@pytest.fixture(scope="module")
def nb(smollm2):
    """The notebook's state after its setup cells (prompts, answers, clean + corrupted caches)."""
    tl_model = smollm2
    prompts, answers, answer_tokens = [], [], []
    for j, (country, capital) in enumerate(PAIRS):
        other = PAIRS[j ^ 1][1]  # France<->Italy, Spain<->Germany
        prompts.append(f"The capital of {country} is")
        answers.append((capital, other))
        correct = tl_model.to_tokens(capital, prepend_bos=False).squeeze(0).tolist()
        incorrect = tl_model.to_tokens(other, prepend_bos=False).squeeze(0).tolist()
        answer_tokens.append((correct, incorrect))
    answer_tokens = torch.tensor(answer_tokens)
    tokens = tl_model.to_tokens(prompts, prepend_bos=True)
    original_logits, cache = tl_model.run_with_cache(tokens)
    # corrupted prompts: swap each pair, so the clean answer becomes the wrong one
    corrupted_prompts = [prompts[j ^ 1] for j in range(len(prompts))]
    corrupted_tokens = tl_model.to_tokens(corrupted_prompts, prepend_bos=True)
    corrupted_logits, corrupted_cache = tl_model.run_with_cache(corrupted_tokens, return_type="logits")
    return dict(
        tl_model=tl_model, prompts=prompts, answers=answers, answer_tokens=answer_tokens, tokens=tokens,
        original_logits=original_logits, cache=cache, corrupted_tokens=corrupted_tokens,
        corrupted_logits=corrupted_logits, corrupted_cache=corrupted_cache,
        original_average_logit_diff=logits_to_ave_logit_diff(original_logits, answer_tokens),
        corrupted_average_logit_diff=logits_to_ave_logit_diff(corrupted_logits, answer_tokens),
    )


# ------------------------------------------------------------------ model, hooks, task


def test_parameter_names_and_shapes(nb):
    tl_model = nb["tl_model"]
    shapes = {name: tuple(p.shape) for name, p in tl_model.named_parameters() if name.startswith("blocks.0.")}
    assert shapes["blocks.0.attn.W_Q"] == (9, 576, 64)
    assert shapes["blocks.0.attn.W_O"] == (9, 64, 576)
    assert shapes["blocks.0.attn._W_K"] == (3, 576, 64)  # GQA: 3 key/value heads
    assert shapes["blocks.0.mlp.W_in"] == (576, 1536) and shapes["blocks.0.mlp.W_gate"] == (576, 1536)
    others = {name: tuple(p.shape) for name, p in tl_model.named_parameters() if not name.startswith("blocks")}
    assert others["embed.W_E"] == (49152, 576)


def test_hook_names_of_the_first_block(nb):
    tl_model = nb["tl_model"]
    seen = []

    def print_name_shape_hook_function(activation, hook):
        seen.append((hook.name, tuple(activation.shape)))

    def not_in_late_block_filter(name):
        return name.startswith("blocks.0.") or not name.startswith("blocks")

    example_problem = "The capital of France is"
    n_tokens = len(tl_model.to_tokens(example_problem)[0])
    tl_model.run_with_hooks(
        example_problem, return_type=None, fwd_hooks=[(not_in_late_block_filter, print_name_shape_hook_function)]
    )
    names = dict(seen)
    assert names["hook_embed"] == (1, n_tokens, 576)
    assert names["blocks.0.ln1.hook_scale"] == (1, n_tokens, 1)
    assert names["blocks.0.attn.hook_q"] == (1, n_tokens, 9, 64)
    assert names["blocks.0.attn.hook_k"] == (1, n_tokens, 3, 64)
    assert names["blocks.0.attn.hook_pattern"] == (1, 9, n_tokens, n_tokens)
    assert names["blocks.0.hook_resid_post"] == (1, n_tokens, 576)
    assert not any(n.startswith("blocks.1.") for n, _ in seen)


def test_test_prompt_prints_ranks(nb, capsys):
    tl_model = nb["tl_model"]
    utils.test_prompt(nb["prompts"][0], nb["answers"][0][0], tl_model, prepend_bos=True)
    out = capsys.readouterr().out
    assert "Tokenized prompt: ['<|im_start|>', 'The', ' capital', ' of', ' France', ' is']" in out
    assert "Tokenized answer: [' Paris']" in out
    assert "Rank: 0 " in out and "Top 0th token. Logit:" in out and "Token: | Paris|" in out
    assert out.count("Top ") == 10
    assert "Ranks of the answer tokens: [(' Paris', 0)]" in out


def test_prompts_have_the_same_length(nb):
    tl_model = nb["tl_model"]
    lengths = {len(tl_model.to_str_tokens(p)) for p in nb["prompts"]}
    assert lengths == {6}  # BOS <|im_start|> + 5 word tokens (TL 3.9 prepends BOS for SmolLM2)
    assert nb["tokens"].shape == (4, 6) and nb["answer_tokens"].shape == (4, 2, 1)
    assert tl_model.to_string(nb["corrupted_tokens"])[0] == "<|im_start|>The capital of Italy is"


def test_logit_difference_metric(nb):
    per_prompt = logits_to_ave_logit_diff(nb["original_logits"], nb["answer_tokens"], per_prompt=True)
    assert per_prompt.shape == (4,) and (per_prompt > 0).all()  # the model knows its capitals
    # swapping the prompts swaps which answer is right
    assert nb["corrupted_average_logit_diff"] < 0 < nb["original_average_logit_diff"]


# ------------------------------------------------------------------ direct logit attribution


def residual_stack_to_logit_diff(residual_stack, cache, logit_diff_directions, n_prompts):
    scaled_residual_stack = cache.apply_ln_to_stack(residual_stack, layer=-1, pos_slice=-1)
    return einsum(
        scaled_residual_stack, logit_diff_directions, "... batch d_model, batch head d_model -> ..."
    ) / n_prompts


@pytest.fixture(scope="module")
def directions(nb):
    tl_model = nb["tl_model"]
    answer_residual_directions = tl_model.tokens_to_residual_directions(nb["answer_tokens"])
    assert answer_residual_directions.shape == (4, 2, 1, 576)
    logit_diff_directions = answer_residual_directions[:, 0] - answer_residual_directions[:, 1]
    assert logit_diff_directions.shape == (4, 1, 576)
    return logit_diff_directions


def test_final_residual_reproduces_the_logit_diff(nb, directions):
    cache = nb["cache"]
    final_residual_stream = cache["resid_post", -1]
    assert final_residual_stream.shape == (4, 6, 576)
    final_token_residual_stream = final_residual_stream[:, -1, :]
    scaled = cache.apply_ln_to_stack(final_token_residual_stream, layer=-1, pos_slice=-1)
    average_logit_diff = einsum(scaled, directions, "batch d_model, batch head d_model -> ") / len(nb["prompts"])
    # b_U is zero after center_unembed on this model, so DLA recovers the logit diff itself
    assert nb["tl_model"].b_U.abs().max() == 0
    torch.testing.assert_close(average_logit_diff, nb["original_average_logit_diff"], atol=1e-3, rtol=1e-4)


def test_logit_lens(nb, directions):
    cache, tl_model = nb["cache"], nb["tl_model"]
    accumulated_residual, labels = cache.accumulated_resid(layer=-1, incl_mid=True, pos_slice=-1, return_labels=True)
    assert accumulated_residual.shape == (2 * 30 + 1, 4, 576)
    assert labels[:3] == ["0_pre", "0_mid", "1_pre"] and labels[-1] == "final_post"
    logit_lens_logit_diffs = residual_stack_to_logit_diff(accumulated_residual, cache, directions, 4)
    assert logit_lens_logit_diffs.shape == (61,)
    x = np.arange(tl_model.cfg.n_layers * 2 + 1) / 2
    assert len(x) == len(labels)
    torch.testing.assert_close(logit_lens_logit_diffs[-1], nb["original_average_logit_diff"], atol=1e-3, rtol=1e-4)
    assert logit_lens_logit_diffs[-1] > logit_lens_logit_diffs[0]


def test_layer_attribution(nb, directions):
    cache = nb["cache"]
    per_layer_residual, labels = cache.decompose_resid(layer=-1, pos_slice=-1, return_labels=True)
    assert labels[0] == "embed" and labels[1:3] == ["0_attn_out", "0_mlp_out"] and len(labels) == 61
    per_layer_logit_diffs = residual_stack_to_logit_diff(per_layer_residual, cache, directions, 4)
    torch.testing.assert_close(per_layer_logit_diffs.sum(), nb["original_average_logit_diff"], atol=1e-3, rtol=1e-4)


@pytest.fixture(scope="module")
def per_head_logit_diffs(nb, directions):
    cache, tl_model = nb["cache"], nb["tl_model"]
    per_head_residual, labels = cache.stack_head_results(layer=-1, pos_slice=-1, return_labels=True)
    assert per_head_residual.shape == (270, 4, 576) and labels == tl_model.all_head_labels()
    per_head = residual_stack_to_logit_diff(per_head_residual, cache, directions, 4)
    return einops.rearrange(
        per_head, "(layer head_index) -> layer head_index",
        layer=tl_model.cfg.n_layers, head_index=tl_model.cfg.n_heads,
    )


def test_head_attribution(nb, directions, per_head_logit_diffs):
    assert per_head_logit_diffs.shape == (30, 9)
    # heads + the rest of the residual stream = the whole logit difference
    cache = nb["cache"]
    rest = cache.stack_head_results(pos_slice=-1, incl_remainder=True)[-1:]
    total = per_head_logit_diffs.sum() + residual_stack_to_logit_diff(rest, cache, directions, 4).sum()
    torch.testing.assert_close(total, nb["original_average_logit_diff"], atol=1e-3, rtol=1e-4)


def visualize_attention_patterns(heads, local_cache, local_tokens, tl_model):
    """The notebook's helper up to the circuitsvis call: returns labels, patterns, str tokens."""
    if isinstance(heads, int):
        heads = [heads]
    labels, patterns = [], []
    batch_index = 0
    for head in heads:
        layer = int(head) // tl_model.cfg.n_heads
        head_index = int(head) % tl_model.cfg.n_heads
        labels.append(f"L{layer}H{head_index}")
        patterns.append(local_cache["attn", layer][batch_index, head_index])
    str_tokens = tl_model.to_str_tokens(local_tokens)
    return labels, torch.stack(patterns, dim=0), str_tokens


def test_attention_patterns_of_top_heads(nb, per_head_logit_diffs):
    tl_model, cache, tokens = nb["tl_model"], nb["cache"], nb["tokens"]
    top_k = 3
    for sign in (1, -1):
        top_heads = torch.topk(sign * per_head_logit_diffs.flatten(), k=top_k).indices
        labels, patterns, str_tokens = visualize_attention_patterns(top_heads, cache, tokens[0], tl_model)
        assert len(labels) == 3 and all(l.startswith("L") and "H" in l for l in labels)
        assert patterns.shape == (3, 6, 6) and len(str_tokens) == 6
        torch.testing.assert_close(patterns.sum(-1), torch.ones(3, 6), atol=1e-5, rtol=0)
        assert torch.triu(patterns, diagonal=1).abs().max() == 0  # causal


# ------------------------------------------------------------------ activation patching


def normalize(nb, patched_logit_diff):
    clean, corrupted = nb["original_average_logit_diff"], nb["corrupted_average_logit_diff"]
    return (patched_logit_diff - corrupted) / (clean - corrupted)


def patch_residual_component(corrupted_residual_component, hook, pos, clean_cache):
    corrupted_residual_component[:, pos, :] = clean_cache[hook.name][:, pos, :]
    return corrupted_residual_component


def test_residual_stream_patching(nb):
    tl_model, tokens, cache = nb["tl_model"], nb["tokens"], nb["cache"]
    patched_residual_stream_diff = torch.zeros(len(RESID_LAYERS), len(RESID_POSITIONS))
    for i, layer in enumerate(RESID_LAYERS):
        for j, position in enumerate(RESID_POSITIONS):
            hook_fn = partial(patch_residual_component, pos=position, clean_cache=cache)
            patched_logits = tl_model.run_with_hooks(
                nb["corrupted_tokens"], fwd_hooks=[(utils.get_act_name("resid_pre", layer), hook_fn)],
                return_type="logits",
            )
            patched_residual_stream_diff[i, j] = normalize(
                nb, logits_to_ave_logit_diff(patched_logits, nb["answer_tokens"])
            )
    # position 3 (" of") is the same in both prompts, and in layer 0 nothing has mixed yet
    assert abs(patched_residual_stream_diff[0, 0]) < 1e-4
    # in layer 0 the country token's residual is the only difference: full recovery
    torch.testing.assert_close(patched_residual_stream_diff[0, 1], torch.tensor(1.0), atol=1e-3, rtol=0)
    # by the last layer the answer lives at the final position
    assert patched_residual_stream_diff[1, 2] > 0.5
    assert abs(patched_residual_stream_diff[1, 1]) < abs(patched_residual_stream_diff[1, 2])
    prompt_position_labels = [f"{tok}_{i}" for i, tok in enumerate(tl_model.to_str_tokens(tokens[0]))]
    assert prompt_position_labels[-2:] == [" France_4", " is_5"]


def test_attn_and_mlp_layer_patching(nb):
    tl_model, cache = nb["tl_model"], nb["cache"]
    positions = (5,)
    patched_attn_diff = torch.zeros(len(LAYERS), len(positions))
    patched_mlp_diff = torch.zeros(len(LAYERS), len(positions))
    for i, layer in enumerate(LAYERS):
        for j, position in enumerate(positions):
            hook_fn = partial(patch_residual_component, pos=position, clean_cache=cache)
            patched_attn_logits = tl_model.run_with_hooks(
                nb["corrupted_tokens"], fwd_hooks=[(utils.get_act_name("attn_out", layer), hook_fn)],
                return_type="logits",
            )
            patched_mlp_logits = tl_model.run_with_hooks(
                nb["corrupted_tokens"], fwd_hooks=[(utils.get_act_name("mlp_out", layer), hook_fn)],
                return_type="logits",
            )
            patched_attn_diff[i, j] = normalize(nb, logits_to_ave_logit_diff(patched_attn_logits, nb["answer_tokens"]))
            patched_mlp_diff[i, j] = normalize(nb, logits_to_ave_logit_diff(patched_mlp_logits, nb["answer_tokens"]))
    assert torch.isfinite(patched_attn_diff).all() and torch.isfinite(patched_mlp_diff).all()
    assert patched_attn_diff.abs().max() > 0 and patched_mlp_diff.abs().max() > 0


def patch_head_vector(corrupted_head_vector, hook, head_index, clean_cache):
    corrupted_head_vector[:, :, head_index, :] = clean_cache[hook.name][:, :, head_index, :]
    return corrupted_head_vector


def patch_head_vector_dim1(corrupted_head_vector, hook, head_index, clean_cache):
    # the notebook's value-patching cell indexes dim 1 (for v that is the position axis)
    corrupted_head_vector[:, head_index, :, :] = clean_cache[hook.name][:, head_index, :, :]
    return corrupted_head_vector


def patch_head_pattern(corrupted_head_pattern, hook, head_index, clean_cache):
    corrupted_head_pattern[:, head_index, :, :] = clean_cache[hook.name][:, head_index, :, :]
    return corrupted_head_pattern


def _head_sweep(nb, act, hook_fn):
    tl_model, cache = nb["tl_model"], nb["cache"]
    out = torch.zeros(len(LAYERS), len(HEADS))
    for i, layer in enumerate(LAYERS):
        for j, head_index in enumerate(HEADS):
            fn = partial(hook_fn, head_index=head_index, clean_cache=cache)
            patched_logits = tl_model.run_with_hooks(
                nb["corrupted_tokens"], fwd_hooks=[(utils.get_act_name(act, layer, "attn"), fn)], return_type="logits"
            )
            out[i, j] = normalize(nb, logits_to_ave_logit_diff(patched_logits, nb["answer_tokens"]))
    return out


def test_head_patching_z_v_pattern(nb):
    patched_head_z_diff = _head_sweep(nb, "z", patch_head_vector)
    patched_head_v_diff = _head_sweep(nb, "v", patch_head_vector_dim1)
    patched_head_attn_diff = _head_sweep(nb, "attn", patch_head_pattern)
    for t in (patched_head_z_diff, patched_head_v_diff, patched_head_attn_diff):
        assert t.shape == (len(LAYERS), len(HEADS)) and torch.isfinite(t).all()
    assert patched_head_z_diff.abs().max() > 0
    head_labels = [f"L{layer}H{head}" for layer in range(30) for head in range(9)]
    assert head_labels == nb["tl_model"].all_head_labels()
    color = einops.repeat(np.arange(30), "layer -> (layer head)", head=9)
    assert color.shape == (270,)


def test_z_patch_equals_value_plus_pattern_patch(nb):
    """z = pattern @ v, so patching every head's pattern and every KV head's value in a layer
    is the same intervention as patching z there."""
    tl_model, cache = nb["tl_model"], nb["cache"]
    layer = 14
    name = partial(utils.get_act_name, layer=layer, layer_type="attn")

    def patch_all(act, hook):
        act[:] = cache[hook.name]
        return act

    z_logits = tl_model.run_with_hooks(nb["corrupted_tokens"], fwd_hooks=[(name("z"), patch_all)])
    vp_logits = tl_model.run_with_hooks(
        nb["corrupted_tokens"], fwd_hooks=[(name("v"), patch_all), (name("attn"), patch_all)]
    )
    torch.testing.assert_close(vp_logits, z_logits, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(z_logits, nb["corrupted_logits"], atol=1e-3)

"""lenswidget.utils: hook-name aliases, Slice, losses, small tensor helpers."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lenswidget import utils
from lenswidget.errors import InvalidOptionError, OutOfRangeError, ShapeMismatchError
from lenswidget.utils import Slice, get_act_name


@pytest.mark.parametrize(
    "args, expected",
    [
        (("blocks.3.hook_resid_pre",), "blocks.3.hook_resid_pre"),
        (("hook_embed",), "hook_embed"),
        (("embed",), "hook_embed"),
        (("pos_embed",), "hook_pos_embed"),
        (("resid_pre", 5), "blocks.5.hook_resid_pre"),
        (("resid_mid", 0), "blocks.0.hook_resid_mid"),
        (("resid_post", 11), "blocks.11.hook_resid_post"),
        (("attn_out", 2), "blocks.2.hook_attn_out"),
        (("mlp_out", 2), "blocks.2.hook_mlp_out"),
        (("z", 2, "attn"), "blocks.2.attn.hook_z"),
        (("z", 2), "blocks.2.attn.hook_z"),
        (("q", 1), "blocks.1.attn.hook_q"),
        (("k", 1, "a"), "blocks.1.attn.hook_k"),
        (("v", 1, "attention"), "blocks.1.attn.hook_v"),
        (("value", 1), "blocks.1.attn.hook_v"),
        (("key", 1), "blocks.1.attn.hook_k"),
        (("query", 1), "blocks.1.attn.hook_q"),
        (("rot_q", 0), "blocks.0.attn.hook_rot_q"),
        (("result", 4), "blocks.4.attn.hook_result"),
        (("attn", 3), "blocks.3.attn.hook_pattern"),
        (("attn", 3, "attn"), "blocks.3.attn.hook_pattern"),
        (("pattern", 3), "blocks.3.attn.hook_pattern"),
        (("attn_scores", 3), "blocks.3.attn.hook_attn_scores"),
        (("attn_logits", 3), "blocks.3.attn.hook_attn_scores"),
        (("pre", 6), "blocks.6.mlp.hook_pre"),
        (("post", 6), "blocks.6.mlp.hook_post"),
        (("mlp_post", 6), "blocks.6.mlp.hook_post"),
        (("mlp_pre", 6), "blocks.6.mlp.hook_pre"),
        (("pre_linear", 6), "blocks.6.mlp.hook_pre_linear"),
        (("post", 6, "m"), "blocks.6.mlp.hook_post"),
        (("scale", 3, "ln1"), "blocks.3.ln1.hook_scale"),
        (("normalized", 3, "ln2"), "blocks.3.ln2.hook_normalized"),
        (("scale",), "ln_final.hook_scale"),
        (("normalized",), "ln_final.hook_normalized"),
        (("resid_pre", 2, "b"), "blocks.2.hook_resid_pre"),
        (("k6a",), "blocks.6.attn.hook_k"),
        (("resid_post12",), "blocks.12.hook_resid_post"),
        (("scale4ln1",), "blocks.4.ln1.hook_scale"),
        (("pattern0",), "blocks.0.attn.hook_pattern"),
    ],
)
def test_get_act_name_aliases(args, expected):
    assert get_act_name(*args) == expected


def test_slice_modes():
    x = torch.arange(20).reshape(4, 5)
    assert torch.equal(Slice(None).apply(x, 1), x)
    assert torch.equal(Slice(-1).apply(x, 1), x[:, -1])
    assert torch.equal(Slice((1, 4)).apply(x, 1), x[:, 1:4])
    assert torch.equal(Slice((0, 5, 2)).apply(x, -1), x[:, 0:5:2])
    assert torch.equal(Slice(slice(2, None)).apply(x, 0), x[2:])
    assert torch.equal(Slice([0, 3]).apply(x, 1), x[:, [0, 3]])
    assert torch.equal(Slice(np.array([1, 2])).apply(x, 0), x[[1, 2]])
    assert torch.equal(Slice(torch.tensor([4, 0])).apply(x, 1), x[:, [4, 0]])
    assert torch.equal(Slice(torch.tensor(2)).apply(x, 1), x[:, 2])
    assert Slice(Slice(3)).mode == "int"
    assert Slice(2).indices().tolist() == [2]
    assert Slice((1, 7, 2)).indices(10).tolist() == [1, 3, 5]
    assert Slice(None).indices(3).tolist() == [0, 1, 2]
    assert Slice([5, 1]).indices(10).tolist() == [5, 1]


def test_slice_out_of_range_errors_name_the_range():
    x = torch.zeros(2, 6, 3)
    with pytest.raises(OutOfRangeError, match=r"pos_slice 6 is out of range; valid: -6\.\.5"):
        Slice(6).apply(x, -2, what="pos_slice")
    with pytest.raises(OutOfRangeError):
        Slice(-7).apply(x, 1)
    with pytest.raises(OutOfRangeError):
        Slice([0, 9]).apply(x, 1)
    with pytest.raises(OutOfRangeError, match="selects nothing"):
        Slice((10, 20)).apply(x, 1)
    with pytest.raises(InvalidOptionError):
        Slice("a")
    with pytest.raises(InvalidOptionError):
        Slice(True)
    with pytest.raises(IndexError):  # typed error is still an IndexError
        Slice(3).apply(x, 0)


def test_lm_cross_entropy_loss_matches_torch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 11, generator=g)
    tokens = torch.randint(0, 11, (2, 5), generator=g)
    ref = F.cross_entropy(logits[:, :-1].reshape(-1, 11), tokens[:, 1:].reshape(-1), reduction="none").reshape(2, 4)
    per = utils.lm_cross_entropy_loss(logits, tokens, per_token=True)
    assert per.shape == (2, 4)
    torch.testing.assert_close(per, ref)
    torch.testing.assert_close(utils.lm_cross_entropy_loss(logits, tokens), ref.mean())
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    masked = utils.lm_cross_entropy_loss(logits, tokens, attention_mask=mask)
    keep = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    torch.testing.assert_close(masked, ref[keep].mean())
    with pytest.raises(ShapeMismatchError):
        utils.lm_cross_entropy_loss(logits, tokens[:, :3])


def test_small_tensor_helpers():
    t = torch.arange(6.0, requires_grad=True).reshape(2, 3)
    a = utils.to_numpy(t)
    assert isinstance(a, np.ndarray) and a.shape == (2, 3) and a[1, 2] == 5
    assert utils.to_numpy([1, 2]).tolist() == [1, 2]
    assert utils.to_numpy(torch.ones(2, dtype=torch.bfloat16)).dtype == np.float32
    assert isinstance(utils.get_device(), torch.device)
    assert utils.remove_batch_dim(torch.zeros(1, 4, 2)).shape == (4, 2)
    assert utils.remove_batch_dim(torch.zeros(3, 4)).shape == (3, 4)
    assert utils.transpose(torch.zeros(2, 3, 4)).shape == (2, 4, 3)
    assert utils.get_corner(torch.arange(25).reshape(5, 5), 2).tolist() == [[0, 1], [5, 6]]


class _Tok:
    def __init__(self, side, pad=0, bos=0):
        self.padding_side, self.pad_token_id, self.bos_token_id = side, pad, bos


def test_get_attention_mask_both_sides():
    right = torch.tensor([[0, 5, 6, 0, 0], [0, 5, 6, 7, 8]])
    m = utils.get_attention_mask(_Tok("right"), right, prepend_bos=True)
    assert m.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    left = torch.tensor([[0, 0, 0, 5, 6], [0, 5, 6, 7, 8]])
    m = utils.get_attention_mask(_Tok("left"), left, prepend_bos=True)
    assert m.tolist() == [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]
    m = utils.get_attention_mask(_Tok("left", pad=9, bos=1), torch.tensor([[9, 1, 5]]), prepend_bos=True)
    assert m.tolist() == [[0, 1, 1]]


def test_tokenize_and_concatenate_on_a_list():
    class T:
        eos_token, bos_token_id = "|", 99

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [ord(c) for c in text]}

    out = utils.tokenize_and_concatenate(["abcd", "efgh"], T(), max_length=4)
    assert out.shape == (3, 4)
    assert out[:, 0].tolist() == [99, 99, 99]
    assert out[0, 1:].tolist() == [ord("a"), ord("b"), ord("c")]


def test_test_prompt_prints_ranks_logits_and_probabilities(capsys):
    from tests.models import tiny_model

    model = tiny_model("gpt2", tokenizer=True)
    utils.test_prompt("The cat sat on", "the mat", model, top_k=3, prepend_bos=True)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("Tokenized prompt: ['<|bos|>', 'The'")
    assert lines[1] == "Tokenized answer: [' the', ' m', 'at']"
    assert out.count("Performance on answer token:") == 3 and out.count("Top 0th token.") == 3
    assert out.count("Top 2th token.") == 3 and "Top 3th token." not in out
    # the printed rank / logit / prob of " the" agree with the model's own logits
    tokens = model.to_tokens("The cat sat on", prepend_bos=True)
    logits = model(tokens)[0, -1]
    the = model.to_single_token(" the")
    rank = int((logits > logits[the]).sum())
    prob = logits.softmax(-1)[the].item()
    assert f"Rank: {rank: <8} Logit: {logits[the].item():5.2f} Prob: {prob:6.2%} Token: | the|" in out
    assert out.rstrip().splitlines()[-1].startswith("Ranks of the answer tokens: [(' the', ")
    utils.test_prompt("The cat", ["dog", "mat"], model, print_details=False)
    out = capsys.readouterr().out
    assert out.count("Ranks of the answer tokens") == 2 and "Top 0th" not in out

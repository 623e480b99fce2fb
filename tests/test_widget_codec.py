"""Binary tensor codec: round trips, error bounds, bad input, and the golden bytes that
the TypeScript decoder is tested against (tests/js/golden/codec_golden.json).

Regenerate the golden file with ``python tests/test_widget_codec.py``.
"""

from __future__ import annotations

import base64
import json
import pathlib

import numpy as np
import pytest
import torch

from lenswidget.errors import InvalidOptionError, OutOfRangeError, ShapeMismatchError
from lenswidget.widgets import codec

GOLDEN = pathlib.Path(__file__).parent / "js" / "golden" / "codec_golden.json"


def golden_cases() -> list[dict]:
    """Encodings of fixed inputs, with the values a decoder must recover (as JSON numbers)."""
    f16 = np.array([[0.0, 1.0, -2.0, 0.333251953125], [65504.0, 6.103515625e-05, 5.960464477539063e-08, -0.0]], dtype=np.float32)
    f32 = np.array([1.5, -3.25, 1e-30, 3.4e38], dtype=np.float32)
    u8 = np.linspace(0.0, 1.0, 12, dtype=np.float32).reshape(3, 4)
    cases = []
    for name, arr, dtype in [("float16", f16, "float16"), ("float32", f32, "float32"), ("uint8", u8, "uint8")]:
        enc = codec.encode(arr, dtype)
        cases.append({
            "name": name,
            "payload": {**{k: v for k, v in enc.items() if k != "buffer"}, "buffer_b64": base64.b64encode(enc["buffer"]).decode()},
            "expected": codec.decode(enc).reshape(-1).astype(float).tolist(),
            "original": arr.reshape(-1).astype(float).tolist(),
        })
    return cases


def test_golden_file_matches_encoder():
    assert GOLDEN.exists(), "run `python tests/test_widget_codec.py` to write the golden file"
    assert json.loads(GOLDEN.read_text()) == json.loads(json.dumps(golden_cases()))


@pytest.mark.parametrize("dtype, tol", [("float32", 0.0), ("float16", 2.0**-11)])
def test_float_round_trip(dtype, tol):
    x = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)
    enc = codec.encode(torch.from_numpy(x), dtype)
    assert enc["dtype"] == dtype and enc["shape"] == [3, 4, 5]
    assert isinstance(enc["buffer"], bytes) and len(enc["buffer"]) == x.size * (4 if dtype == "float32" else 2)
    np.testing.assert_allclose(codec.decode(enc), x, rtol=tol, atol=0)


def test_float16_is_default_and_little_endian():
    enc = codec.encode(np.array([1.0, -2.0]))
    assert enc["dtype"] == "float16"
    assert enc["buffer"] == bytes([0x00, 0x3C, 0x00, 0xC0])


def test_uint8_error_bound_is_declared_and_holds():
    x = np.random.default_rng(1).random((4, 64, 64), dtype=np.float32)
    x[0, 0, :3] = [0.0, 1.0, 0.5]
    enc = codec.encode(x, "uint8")
    assert enc["max_abs_error"] == pytest.approx(1 / 510) and enc["max_abs_error"] <= 1 / 510
    assert len(enc["buffer"]) == x.size
    err = np.abs(codec.decode(enc) - x).max()
    assert err <= 1 / 510 + 1e-7
    # The worst case is attained by values halfway between codes.
    mid = (np.arange(255, dtype=np.float64) + 0.5) / 255
    err = np.abs(codec.decode(codec.encode(mid, "uint8")) - mid).max()
    assert err <= 1 / 510 + 1e-7


def test_uint8_softmax_noise_is_clipped_but_real_overflow_rejected():
    enc = codec.encode(np.array([-1e-6, 1 + 1e-6]), "uint8")
    assert list(enc["buffer"]) == [0, 255]
    with pytest.raises(OutOfRangeError, match=r"\[0, 1\]"):
        codec.encode(np.array([0.5, 1.2]), "uint8")
    with pytest.raises(OutOfRangeError):
        codec.encode(np.array([np.nan]), "uint8")


def test_float16_overflow_falls_back_to_float32_and_keeps_nan():
    enc = codec.encode(np.array([1e6, 1.0]), "float16")
    assert enc["dtype"] == "float32"
    np.testing.assert_array_equal(codec.decode(enc), [1e6, 1.0])
    dec = codec.decode(codec.encode(np.array([np.nan, np.inf, 1.0])))
    assert np.isnan(dec[0]) and np.isinf(dec[1])


def test_bfloat16_and_integer_inputs():
    t = torch.tensor([[0.5, 0.25]], dtype=torch.bfloat16)
    np.testing.assert_array_equal(codec.decode(codec.encode(t)), [[0.5, 0.25]])
    np.testing.assert_array_equal(codec.decode(codec.encode([1, 2, 3], "float32")), [1, 2, 3])


def test_bad_inputs_raise_typed_errors():
    with pytest.raises(InvalidOptionError):
        codec.encode(np.zeros(2), "float64")
    with pytest.raises(ShapeMismatchError):
        codec.encode([[1, 2], [3]])
    with pytest.raises(ShapeMismatchError):
        codec.encode(np.array(["a", "b"]))
    with pytest.raises(ShapeMismatchError):
        codec.decode({"buffer": b"\x00" * 3, "shape": [2], "dtype": "float16"})


def test_payload_is_json_except_the_buffer():
    enc = codec.encode(np.zeros((2, 2)), "uint8")
    json.dumps({k: v for k, v in enc.items() if k != "buffer"})


def test_ipywidgets_ships_the_buffer_as_binary():
    from ipywidgets.widgets.widget import _remove_buffers

    state, paths, buffers = _remove_buffers({"pattern": codec.encode(np.ones((2, 3)), "float16")})
    assert paths == [["pattern", "buffer"]]
    assert len(buffers) == 1 and bytes(buffers[0]) == codec.encode(np.ones((2, 3)))["buffer"]
    json.dumps(state)


def test_float16_to_uint8_fast_path_matches_the_general_path():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.random(5000, dtype=np.float32), [0.0, -0.0, 1.0, 1 + 5e-5, -5e-5, 0.5]]).astype(np.float16)
    fast = codec.encode(x, "uint8")
    slow = codec.encode(x.astype(np.float32), "uint8")
    assert fast == slow
    with pytest.raises(OutOfRangeError, match="float16"):
        codec.encode(np.array([0.5, 1.5], dtype=np.float16), "uint8")
    with pytest.raises(OutOfRangeError):
        codec.encode(np.array([np.nan], dtype=np.float16), "uint8")


if __name__ == "__main__":
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(golden_cases(), indent=1) + "\n")
    print(f"wrote {GOLDEN}")

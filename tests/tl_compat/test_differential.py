"""lenswidget against TransformerLens 3.9.0, call by call, on the same weights (docs/compat.md).

One test per (model, processed or not, case); the cases are in ``cases.py`` and run unchanged
through both libraries. Tolerance 1e-4, relative to the tensor's largest magnitude.
"""

from __future__ import annotations

import pytest

from tests.tl_compat.cases import CASES, selected
from tests.tl_compat.compare import compare
from tests.tl_compat.conftest import FAMILIES

PARAMS = [
    pytest.param(family, processed, name, id=f"{family}-{'processed' if processed else 'raw'}-{name}")
    for family in FAMILIES
    for processed in (True, False)
    for name in selected(family, processed)
]


@pytest.mark.parametrize("family, processed, name", PARAMS)
def test_same_as_transformer_lens(tl_results, lw_results, family, processed, name):
    theirs = tl_results[f"{family}/{'processed' if processed else 'unprocessed'}"][name]
    ours = lw_results(family, processed)[name]
    compare(ours, theirs, path=name)


def test_every_case_ran_on_both_sides(tl_results):
    for family in FAMILIES:
        for processed in (True, False):
            got = tl_results[f"{family}/{'processed' if processed else 'unprocessed'}"]
            assert set(selected(family, processed)) <= set(got), (family, processed)
    assert len(CASES) >= 25

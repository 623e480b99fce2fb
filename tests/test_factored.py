"""FactoredMatrix: every operation agrees with the same operation on the dense product."""

import pytest
import torch

from lenswidget.errors import InvalidOptionError, OutOfRangeError, ShapeMismatchError
from lenswidget.factored import FactoredMatrix

TOL = dict(atol=1e-4, rtol=1e-4)


def close(a, b):
    if isinstance(a, FactoredMatrix):
        a = a.AB
    if isinstance(b, FactoredMatrix):
        b = b.AB
    assert a.shape == b.shape, (a.shape, b.shape)
    torch.testing.assert_close(a, b, **TOL)


@pytest.fixture
def g():
    return torch.Generator().manual_seed(0)


def fm(g, *shape_lmr, lead=()):
    l, m, r = shape_lmr
    return FactoredMatrix(
        torch.randn(*lead, l, m, generator=g, dtype=torch.float64),
        torch.randn(*lead, m, r, generator=g, dtype=torch.float64),
    )


def test_shape_dims_and_dense_products(g):
    M = fm(g, 7, 3, 5, lead=(2,))
    assert M.shape == torch.Size([2, 7, 5]) and M.ndim == 3
    assert (M.ldim, M.mdim, M.rdim) == (7, 3, 5)
    close(M.AB, M.A @ M.B)
    close(M.T, M.AB.transpose(-2, -1))
    assert M.pair[0] is M.A and M.pair[1] is M.B
    sq = fm(g, 6, 2, 6)
    close(sq.BA, sq.B @ sq.A)


def test_leading_dims_broadcast(g):
    A = torch.randn(1, 4, 6, 3, generator=g, dtype=torch.float64)
    B = torch.randn(5, 1, 3, 6, generator=g, dtype=torch.float64)
    M = FactoredMatrix(A, B)
    assert M.shape == torch.Size([5, 4, 6, 6])
    close(M, A @ B)


def test_matmul_with_tensors_both_sides(g):
    M = fm(g, 8, 3, 6, lead=(2,))
    X = torch.randn(6, 4, generator=g, dtype=torch.float64)
    Y = torch.randn(5, 8, generator=g, dtype=torch.float64)
    v = torch.randn(6, generator=g, dtype=torch.float64)
    w = torch.randn(8, generator=g, dtype=torch.float64)
    r = M @ X
    assert isinstance(r, FactoredMatrix)
    close(r, M.AB @ X)
    l = Y @ M
    assert isinstance(l, FactoredMatrix)
    close(l, Y @ M.AB)
    close(M @ v, M.AB @ v)
    close(w @ M, w @ M.AB)
    # a product that should use the AB @ X form (rdim < mdim) is still exact
    wide = fm(g, 4, 9, 3)
    Z = torch.randn(3, 2, generator=g, dtype=torch.float64)
    close(wide @ Z, wide.AB @ Z)
    Z2 = torch.randn(5, 4, generator=g, dtype=torch.float64)
    close(Z2 @ wide, Z2 @ wide.AB)


def test_matmul_factored_with_factored(g):
    M = fm(g, 8, 3, 6, lead=(2,))
    N = fm(g, 6, 2, 5, lead=(2,))
    P = M @ N
    assert isinstance(P, FactoredMatrix)
    assert P.mdim <= 2
    close(P, M.AB @ N.AB)
    close(N.T @ M.T, (M.AB @ N.AB).transpose(-2, -1))


def test_scalar_multiplication(g):
    M = fm(g, 5, 2, 4, lead=(3,))
    close(M * 2.5, M.AB * 2.5)
    close(-1.5 * M, M.AB * -1.5)
    close(M * torch.tensor(3.0, dtype=torch.float64), M.AB * 3)
    s = torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64)
    close(M * s, M.AB * s[:, None, None])
    close(-M, -M.AB)
    close(M / 4, M.AB / 4)


def test_svd_reconstructs_and_matches_dense(g):
    M = fm(g, 9, 3, 7, lead=(2,))
    U, S, Vh = M.svd()
    assert U.shape == (2, 9, 3) and S.shape == (2, 3) and Vh.shape == (2, 7, 3)
    close(U @ torch.diag_embed(S) @ Vh.transpose(-2, -1), M.AB)
    dense_S = torch.linalg.svdvals(M.AB)[..., :3]
    close(S, dense_S)
    eye = torch.eye(3, dtype=torch.float64).expand(2, 3, 3)
    close(U.transpose(-2, -1) @ U, eye)
    close(Vh.transpose(-2, -1) @ Vh, eye)
    assert M.U is U and M.S is S and M.Vh is Vh  # cached


def test_svd_is_accurate_for_badly_scaled_factors(g):
    # a huge-norm A times a tiny-norm B: the product is well conditioned
    A = torch.randn(50, 4, generator=g, dtype=torch.float64) * 1e6
    B = torch.randn(4, 40, generator=g, dtype=torch.float64) * 1e-6
    M = FactoredMatrix(A.float(), B.float())
    dense = torch.linalg.svdvals((A @ B))[:4]
    torch.testing.assert_close(M.S.double(), dense, rtol=1e-4, atol=1e-6)


def test_norm_eigenvalues_and_collapses(g):
    M = fm(g, 6, 2, 6, lead=(3,))
    close(M.norm(), M.AB.norm(dim=(-2, -1)))
    M.svd()
    close(M.norm(), M.AB.norm(dim=(-2, -1)))  # the cached-svd path too
    ev = M.eigenvalues
    assert ev.shape == (3, 2) and ev.is_complex()
    dense_ev = torch.linalg.eigvals(M.AB)
    for b in range(3):
        top = dense_ev[b][dense_ev[b].abs().argsort(descending=True)[:2]]
        mine = ev[b][ev[b].abs().argsort(descending=True)]
        torch.testing.assert_close(torch.sort(mine.real).values, torch.sort(top.real).values, atol=1e-6, rtol=1e-6)
    U, S, Vh = M.svd()
    close(M.collapse_l(), torch.diag_embed(S) @ Vh.transpose(-2, -1))
    close(M.collapse_r(), U @ torch.diag_embed(S))
    close(U @ M.collapse_l(), M.AB)
    close(M.collapse_r() @ Vh.transpose(-2, -1), M.AB)
    even = M.make_even()
    close(even, M.AB)
    close(even.A.norm(dim=(-2, -1)), even.B.norm(dim=(-2, -1)))


def test_getitem_matches_dense(g):
    M = fm(g, 6, 3, 5, lead=(4, 2))
    D = M.AB
    for idx in [1, (2, 1), (slice(1, 3),), (0, 1, slice(2, 5)), (0, 1, 3), (0, 1, 3, 4),
                (..., 2), (..., slice(1, 4), slice(0, 2)), (slice(None), 0, slice(None), 1), (..., 2, 3)]:
        got = M[idx]
        close(got, D[idx])


def test_get_corner_unsqueeze_and_repr(g):
    M = fm(g, 6, 3, 5, lead=(4,))
    close(M.get_corner(2), M.AB[:2, :2, :2])
    U = M.unsqueeze(0)
    assert U.shape == torch.Size([1, 4, 6, 5])
    close(U, M.AB.unsqueeze(0))
    close(M.unsqueeze(-3), M.AB.unsqueeze(-3))
    assert "Hidden Dim(3)" in repr(M)
    with pytest.raises(OutOfRangeError):
        M.unsqueeze(-1)


def test_mismatched_inner_dims_name_both_shapes():
    with pytest.raises(ShapeMismatchError) as e:
        FactoredMatrix(torch.randn(4, 3), torch.randn(2, 5))
    assert "(4, 3)" in str(e.value) and "(2, 5)" in str(e.value)
    M = FactoredMatrix(torch.randn(4, 3), torch.randn(3, 5))
    with pytest.raises(ShapeMismatchError) as e:
        M @ torch.randn(4, 2)
    assert "(4, 5)" in str(e.value) and "(4, 2)" in str(e.value)
    with pytest.raises(ShapeMismatchError):
        torch.randn(2, 5) @ M
    with pytest.raises(ShapeMismatchError):
        M @ M
    with pytest.raises(ShapeMismatchError):
        M.BA
    with pytest.raises(ShapeMismatchError):
        FactoredMatrix(torch.randn(2, 4, 3), torch.randn(3, 3, 5))
    with pytest.raises(InvalidOptionError):
        M[None]
    with pytest.raises(ValueError):  # typed errors are still ValueErrors
        FactoredMatrix(torch.randn(4), torch.randn(4, 2))


def test_composition_scores_helper_matches_dense(g):
    from lenswidget.utils import composition_scores

    left = fm(g, 6, 2, 6, lead=(3,))
    right = fm(g, 6, 2, 6, lead=(2,))
    s = composition_scores(left, right)
    assert s.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            L, R = left.AB[i], right.AB[j]
            want = (L @ R).norm() / L.norm() / R.norm()
            torch.testing.assert_close(s[i, j], want, atol=1e-6, rtol=1e-6)
    same = composition_scores(left, left, broadcast_dims=False)
    assert same.shape == (3,)

"""FactoredMatrix: a low-rank matrix kept as the product ``A @ B`` of two factors.

>>> A, B = torch.randn(768, 64), torch.randn(64, 768)
>>> M = FactoredMatrix(A, B)          # 768 x 768, rank 64, never materialised
>>> M.shape, M.mdim
(torch.Size([768, 768]), 64)
>>> U, S, Vh = M.svd()                # M.AB == U @ diag(S) @ Vh.T
>>> torch.allclose(M.norm(), M.AB.norm(), rtol=1e-4)
True
"""

from __future__ import annotations

from typing import Any, Tuple, Union

import torch

from .errors import InvalidOptionError, OutOfRangeError, ShapeMismatchError

__all__ = ["FactoredMatrix"]


def _shape(t: torch.Tensor) -> tuple:
    return tuple(t.shape)


class FactoredMatrix:
    """The matrix ``A @ B`` with ``A`` [..., ldim, mdim] and ``B`` [..., mdim, rdim].

    Leading (batch) dims broadcast. Products with tensors or other FactoredMatrix objects stay
    factored; ``svd``, ``norm`` and ``eigenvalues`` only ever decompose mdim-sized matrices.
    ``svd()`` follows TransformerLens: it returns ``U, S, Vh`` with ``AB == U @ diag(S) @ Vh.T``
    (``Vh`` holds the right singular vectors as columns).

    >>> OV = FactoredMatrix(torch.randn(2, 8, 3), torch.randn(2, 3, 8))   # two heads
    >>> (OV @ OV).shape, OV[1].shape, OV.T.ldim
    (torch.Size([2, 8, 8]), torch.Size([8, 8]), 8)
    """

    def __init__(self, A: torch.Tensor, B: torch.Tensor):
        if not isinstance(A, torch.Tensor) or not isinstance(B, torch.Tensor):
            raise ShapeMismatchError("FactoredMatrix(A, B) needs two tensors with at least 2 dims each")
        if A.ndim < 2 or B.ndim < 2:
            raise ShapeMismatchError(
                f"FactoredMatrix factors need at least 2 dims; got A {_shape(A)} and B {_shape(B)}"
            )
        if A.shape[-1] != B.shape[-2]:
            raise ShapeMismatchError(
                f"FactoredMatrix inner dims differ: A {_shape(A)} has {A.shape[-1]} columns but "
                f"B {_shape(B)} has {B.shape[-2]} rows; A.shape[-1] must equal B.shape[-2]"
            )
        try:
            lead = torch.broadcast_shapes(A.shape[:-2], B.shape[:-2])
        except RuntimeError:
            raise ShapeMismatchError(
                f"FactoredMatrix leading dims do not broadcast: A {_shape(A)} and B {_shape(B)}"
            ) from None
        self.ldim, self.mdim, self.rdim = A.shape[-2], A.shape[-1], B.shape[-1]
        self.A = A.broadcast_to(lead + A.shape[-2:]) if A.shape[:-2] != lead else A
        self.B = B.broadcast_to(lead + B.shape[-2:]) if B.shape[:-2] != lead else B
        self.shape = torch.Size(tuple(lead) + (self.ldim, self.rdim))
        self.has_leading_dims = len(lead) > 0
        self._svd: Tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    # ------------------------------------------------------------------ basics
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def AB(self) -> torch.Tensor:
        """The dense product ``A @ B``."""
        return self.A @ self.B

    @property
    def BA(self) -> torch.Tensor:
        """``B @ A`` (mdim x mdim); needs a square matrix (ldim == rdim)."""
        if self.ldim != self.rdim:
            raise ShapeMismatchError(
                f"BA needs a square FactoredMatrix; this one is {tuple(self.shape)} (ldim {self.ldim} != rdim {self.rdim})"
            )
        return self.B @ self.A

    @property
    def T(self) -> "FactoredMatrix":
        """The transpose, ``B.T @ A.T``."""
        return FactoredMatrix(self.B.transpose(-2, -1), self.A.transpose(-2, -1))

    @property
    def pair(self) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.A, self.B

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"FactoredMatrix: Shape({tuple(self.shape)}), Hidden Dim({self.mdim})"

    # ------------------------------------------------------------------ products
    def __matmul__(self, other: Any) -> Union["FactoredMatrix", torch.Tensor]:
        if isinstance(other, FactoredMatrix):
            if other.ldim != self.rdim:
                raise ShapeMismatchError(
                    f"cannot multiply FactoredMatrix {tuple(self.shape)} @ FactoredMatrix {tuple(other.shape)}: "
                    f"{self.rdim} columns vs {other.ldim} rows"
                )
            return (self @ other.A) @ other.B
        if not isinstance(other, torch.Tensor):
            return NotImplemented
        if other.ndim == 0 or other.shape[-2 if other.ndim > 1 else 0] != self.rdim:
            raise ShapeMismatchError(
                f"cannot multiply FactoredMatrix {tuple(self.shape)} @ tensor {_shape(other)}: "
                f"the tensor needs {self.rdim} rows"
            )
        if other.ndim == 1:
            return (self.A @ (self.B @ other).unsqueeze(-1)).squeeze(-1)
        if self.rdim < self.mdim:
            return FactoredMatrix(self.AB, other)
        return FactoredMatrix(self.A, self.B @ other)

    def __rmatmul__(self, other: Any) -> Union["FactoredMatrix", torch.Tensor]:
        if not isinstance(other, torch.Tensor):
            return NotImplemented
        if other.ndim == 0 or other.shape[-1] != self.ldim:
            raise ShapeMismatchError(
                f"cannot multiply tensor {_shape(other)} @ FactoredMatrix {tuple(self.shape)}: "
                f"the tensor needs {self.ldim} columns"
            )
        if other.ndim == 1:
            return ((other @ self.A).unsqueeze(-2) @ self.B).squeeze(-2)
        if self.ldim < self.mdim:
            return FactoredMatrix(other, self.AB)
        return FactoredMatrix(other @ self.A, self.B)

    def __mul__(self, scalar: Any) -> "FactoredMatrix":
        """Scale by a number, a one-element tensor, or a tensor over the leading dims."""
        if isinstance(scalar, torch.Tensor):
            if scalar.numel() != 1:
                if scalar.ndim > len(self.shape) - 2:
                    raise ShapeMismatchError(
                        f"can only scale FactoredMatrix {tuple(self.shape)} by a scalar or a tensor over its "
                        f"leading dims {tuple(self.shape[:-2])}; got {_shape(scalar)}"
                    )
                return FactoredMatrix(self.A * scalar[..., None, None], self.B)
            scalar = scalar.reshape(())
        elif not isinstance(scalar, (int, float)):
            return NotImplemented
        return FactoredMatrix(self.A * scalar, self.B)

    __rmul__ = __mul__

    def __neg__(self) -> "FactoredMatrix":
        return FactoredMatrix(-self.A, self.B)

    def __truediv__(self, scalar: Any) -> "FactoredMatrix":
        return self * (1.0 / scalar)

    # ------------------------------------------------------------------ decompositions
    def _qr_core(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``AB == Qa @ M @ Qb.T`` with orthonormal Qa, Qb and a small core M."""
        A, B = self.A, self.B
        if A.dtype in (torch.float16, torch.bfloat16):
            A, B = A.float(), B.float()
        Qa, Ra = torch.linalg.qr(A)
        Qb, Rb = torch.linalg.qr(B.transpose(-2, -1))
        return Qa, Ra @ Rb.transpose(-2, -1), Qb

    def svd(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``U`` [..., ldim, k], ``S`` [..., k], ``V`` [..., rdim, k] with ``AB = U diag(S) V.T``.

        ``k = min(ldim, mdim, rdim)``. Computed from QR factors of A and B plus an SVD of the
        small k x k core, so it stays accurate and cheap for big low-rank matrices.
        """
        if self._svd is None:
            Qa, M, Qb = self._qr_core()
            Um, S, Vmh = torch.linalg.svd(M, full_matrices=False)
            dt = self.A.dtype
            self._svd = ((Qa @ Um).to(dt), S.to(dt), (Qb @ Vmh.transpose(-2, -1)).to(dt))
        return self._svd

    @property
    def U(self) -> torch.Tensor:
        return self.svd()[0]

    @property
    def S(self) -> torch.Tensor:
        return self.svd()[1]

    @property
    def V(self) -> torch.Tensor:
        """Right singular vectors [..., rdim, k]: ``AB == U @ diag(S) @ V.transpose(-2, -1)``."""
        return self.svd()[2]

    @property
    def Vh(self) -> torch.Tensor:
        """The same tensor as :attr:`V` (TransformerLens's historical name; not a transpose)."""
        return self.svd()[2]

    @property
    def eigenvalues(self) -> torch.Tensor:
        """The (complex) eigenvalues of BA: the nonzero eigenvalues of AB, padded with zeros to mdim."""
        return torch.linalg.eig(self.BA).eigenvalues

    def norm(self) -> torch.Tensor:
        """Frobenius norm of AB, shape = leading dims."""
        if self._svd is not None:
            return self._svd[1].pow(2).sum(-1).sqrt()
        M = self._qr_core()[1]
        return torch.linalg.matrix_norm(M).to(self.A.dtype)

    def collapse_l(self) -> torch.Tensor:
        """``diag(S) @ Vh.T`` [..., k, rdim]: the factorisation with its left orthogonal factor removed."""
        U, S, Vh = self.svd()
        return S[..., :, None] * Vh.transpose(-2, -1)

    def collapse_r(self) -> torch.Tensor:
        """``U @ diag(S)`` [..., ldim, k]: the factorisation with its right orthogonal factor removed."""
        U, S, Vh = self.svd()
        return U * S[..., None, :]

    def make_even(self) -> "FactoredMatrix":
        """The same matrix as ``(U sqrt(S)) @ (sqrt(S) Vh.T)``: both factors equally scaled."""
        U, S, Vh = self.svd()
        root = S.sqrt()
        return FactoredMatrix(U * root[..., None, :], root[..., :, None] * Vh.transpose(-2, -1))

    # ------------------------------------------------------------------ indexing
    def __getitem__(self, idx: Any) -> Union["FactoredMatrix", torch.Tensor]:
        """Index like the dense matrix. Slices keep it factored; an int row or column gives a tensor."""
        if not isinstance(idx, tuple):
            idx = (idx,)
        if any(i is None for i in idx):
            raise InvalidOptionError("FactoredMatrix index", None, ["int", "slice", "list", "tensor", "..."])
        n_ell = sum(1 for i in idx if i is Ellipsis)
        if n_ell > 1:
            raise InvalidOptionError("FactoredMatrix index", idx, ["at most one '...'"])
        if len(idx) - n_ell > self.ndim:
            raise OutOfRangeError("number of FactoredMatrix indices", len(idx) - n_ell, 0, self.ndim)
        if n_ell:
            k = idx.index(Ellipsis)
            idx = idx[:k] + (slice(None),) * (self.ndim - len(idx) + 1) + idx[k + 1 :]
        idx = idx + (slice(None),) * (self.ndim - len(idx))
        lead, row, col = idx[:-2], idx[-2], idx[-1]
        A = self.A[lead + (row, slice(None))]
        B = self.B[lead + (slice(None), col)]
        row_int, col_int = isinstance(row, int), isinstance(col, int)
        if row_int and col_int:
            return (A * B).sum(-1)
        if row_int:
            return (A.unsqueeze(-2) @ B).squeeze(-2)
        if col_int:
            return (A @ B.unsqueeze(-1)).squeeze(-1)
        return FactoredMatrix(A, B)

    def get_corner(self, k: int = 3) -> torch.Tensor:
        """The dense top-left ``k`` x ... x ``k`` corner, computed without forming AB."""
        corner = (slice(k),) * (self.ndim - 2)
        return self.A[corner + (slice(k), slice(None))] @ self.B[corner + (slice(None), slice(k))]

    def unsqueeze(self, k: int) -> "FactoredMatrix":
        """Insert a leading dim of size 1 at ``k`` (``k`` must land among the leading dims)."""
        n = self.ndim
        pos = k + n + 1 if k < 0 else k
        if not 0 <= pos <= n - 2:
            raise OutOfRangeError("FactoredMatrix.unsqueeze dim", k, -(n + 1), n - 2,
                                  hint="only leading (batch) dims can be added")
        return FactoredMatrix(self.A.unsqueeze(pos), self.B.unsqueeze(pos))

"""The NumPy im2col_gemm conv2d on the block plans the generated tests do not reach: row bands of
one image, several images per GEMM with a short last block, groups inside both, and the 1x1
no-copy path. Small integer inputs make every float32 sum exact, so results must equal the
float64 reference bit for bit and any indexing slip shows."""
import numpy as np
import pytest
from conftest import seed_for

import pykern.cpu.conv2d as conv
from pykern._dispatch import prepare

# (TARGET_COLS, MAX_COLS_BYTES): the default plan, one output row per block, two rows per block,
# and several images per block (N=3 below leaves a short last block).
PLANS = {"default": (conv.TARGET_COLS, conv.MAX_COLS_BYTES), "row_bands_1": (1, 1),
         "row_bands_2": (1, 2 * 4 * 2 * 9 * 13), "images_2": (2 * 9 * 13, 1 << 30)}

CASES = [  # (N, C, H, W, K, R, S, params)
    (3, 4, 9, 13, 6, 3, 3, dict(padding=1, bias=True)),
    (3, 4, 9, 13, 6, 3, 3, dict(padding=(1, 2), stride=(2, 1), activation="relu", bias=True)),
    (3, 6, 11, 10, 4, 3, 2, dict(dilation=(2, 3), padding=2, groups=2, bias=True)),
    (3, 4, 9, 13, 8, 5, 5, dict(stride=2, padding=2, groups=4, activation="relu")),
    (3, 8, 9, 13, 6, 1, 1, dict(groups=2, bias=True, activation="relu")),  # the no-copy 1x1 path
    (3, 8, 9, 13, 6, 1, 1, dict(stride=2)),  # 1x1 with a stride: gathered like any other
    (2, 3, 5, 4, 2, 5, 4, {}),  # the filter covers the whole image: P = Q = 1
]


def _ints(rng, shape, dtype):
    return rng.integers(-3, 4, size=shape).astype(dtype)


@pytest.mark.parametrize("plan", list(PLANS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "N{}C{}H{}W{}K{}R{}S{}-".format(*c[:7]) +
                         "-".join(f"{k}{v}" for k, v in c[7].items()))
def test_im2col_gemm_exact(monkeypatch, plan, dtype, case):
    target, max_bytes = PLANS[plan]
    monkeypatch.setattr(conv, "TARGET_COLS", target)
    monkeypatch.setattr(conv, "MAX_COLS_BYTES", max_bytes)
    n, c, h, w, k, r, s, params = case
    params = dict(params)
    g = params.get("groups", 1)
    rng = np.random.default_rng(seed_for("im2col_gemm", plan, dtype, case))
    x, wt = _ints(rng, (n, c, h, w), dtype), _ints(rng, (k, c // g, r, s), dtype)
    bias = _ints(rng, (k,), dtype) if params.pop("bias", False) else None
    prepared = prepare("conv2d", {"x": x, "w": wt, "bias": bias}, params, backend="numpy",
                       variant="im2col_gemm", poison=True)
    prepared.run()
    got = prepared.finish()
    ref = conv.reference(x, wt, bias, **prepared.params)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, ref.astype(dtype))


@pytest.mark.parametrize("n,p,q,crs,itemsize", [(8, 56, 56, 576, 4), (8, 7, 7, 4608, 4), (3, 9, 13, 36, 8),
                                                  (1, 1, 1, 1, 4)])
@pytest.mark.parametrize("target,max_bytes", [(conv.TARGET_COLS, conv.MAX_COLS_BYTES), (1, 1), (10**6, 1 << 30),
                                              (1, 3 * 4608 * 56 * 4)])
def test_block_plans_cover_every_output_once(monkeypatch, n, p, q, crs, itemsize, target, max_bytes):
    """The plan tiles (image, output row) exactly: no gap, no overlap, in every regime."""
    monkeypatch.setattr(conv, "TARGET_COLS", target)
    monkeypatch.setattr(conv, "MAX_COLS_BYTES", max_bytes)
    hits = np.zeros((n, p), int)
    for n0, n1, p0, p1 in conv._blocks(n, p, q, crs, itemsize):
        assert n0 < n1 and p0 < p1
        assert n1 - n0 == 1 or (p0, p1) == (0, p), "several images only as whole images"
        hits[n0:n1, p0:p1] += 1
    assert (hits == 1).all()

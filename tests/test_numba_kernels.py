"""Exact tests of the Numba matmul and conv2d kernels, beyond the generated reference tests.

Inputs are small integers in [-4, 4]: every product and partial sum is then exact in float32, so
the result must equal the float64 reference bit for bit, whatever the summation order. An
indexing slip cannot hide inside a tolerance. Shapes are tiny and non-square, and some are
chosen to cross the tile, block and chunk edges that the generated simulator cases (every dim
<= 33) never reach.
"""
import numpy as np
import pytest
from conftest import require_backend, seed_for

import pykern as pk
from pykern.ops.conv2d import reference as conv_reference
from pykern.numba_cuda import conv2d as numba_conv2d
from pykern.numba_cuda import matmul as numba_matmul


def _ints(rng, shape):
    return rng.integers(-4, 5, size=shape).astype(np.float32)


def _matmul_exact(variant, m, n, k):
    rng = np.random.default_rng(seed_for("matmul-exact", variant, m, n, k))
    a, b = _ints(rng, (m, k)), _ints(rng, (k, n))
    c = pk.matmul(a, b, backend="numba", variant=variant)
    assert c.dtype == np.float32 and c.shape == (m, n)
    np.testing.assert_array_equal(c, a.astype(np.float64) @ b.astype(np.float64))


@pytest.mark.parametrize("variant", [v.name for v in pk.variants("matmul", "numba")])
def test_matmul_exact(variant):
    # K = 37 spans several BK- and TILE-deep tiles and ends in a partial one; M = 9 > 8 rows of
    # the naive block
    require_backend("numba")
    _matmul_exact(variant, 9, 5, 37)


def test_matmul_blocktile_2d_crosses_block_tiles():
    # the generated simulator cases fit in one BM x BN block tile: this needs 2 x 2 blocks,
    # each with a partial edge, and K = BK + 1 a second, nearly empty, k tile
    require_backend("numba")
    _matmul_exact("blocktile_2d", numba_matmul.BM + 2, numba_matmul.BN + 3, numba_matmul.BK + 1)


CONV_CASES = {
    # every parameter at once, none of them symmetric
    "groups_stride_pad_dil_bias_relu": dict(x=(2, 4, 7, 6), w=(6, 2, 3, 2), stride=(2, 1),
                                            padding=(1, 2), dilation=(1, 2), groups=2,
                                            bias=True, activation="relu"),
    # P x Q = 10 x 11 output (2 x 2 smem_tiled tiles), K = 10 (a full and a partial channel
    # block), and a 7x7 filter that limits smem_tiled's channel chunk below C = 3
    "tiles_chunks_channel_blocks": dict(x=(1, 3, 10, 11), w=(10, 3, 7, 7), stride=(1, 1),
                                        padding=(3, 3), dilation=(1, 1), groups=1, bias=True,
                                        activation=None),
}


@pytest.mark.parametrize("case", list(CONV_CASES), ids=str)
@pytest.mark.parametrize("variant", [v.name for v in pk.variants("conv2d", "numba")])
def test_conv2d_exact(variant, case):
    require_backend("numba")
    spec = CONV_CASES[case]
    rng = np.random.default_rng(seed_for("conv2d-exact", variant, case))
    x, w = _ints(rng, spec["x"]), _ints(rng, spec["w"])
    bias = _ints(rng, spec["w"][:1]) if spec["bias"] else None
    params = {k: spec[k] for k in ("stride", "padding", "dilation", "groups", "activation")}
    y = pk.conv2d(x, w, bias, backend="numba", variant=variant, **params)
    ref = conv_reference(x.astype(np.float64), w.astype(np.float64),
                         None if bias is None else bias.astype(np.float64), **params)
    assert y.dtype == np.float32
    assert np.any(ref != 0), "a case whose output is all zeros would test nothing"
    np.testing.assert_array_equal(y, ref)


def test_conv2d_smem_tiled_case_reaches_every_edge():
    # keeps the case above meaningful if the tile constants change
    x, w = CONV_CASES["tiles_chunks_channel_blocks"]["x"], CONV_CASES["tiles_chunks_channel_blocks"]["w"]
    plan = numba_conv2d._smem_plan(x, w, (1, 10, 10, 11), (1, 1), (1, 1), 1)
    grid, tiles_q, _, _, chunk = plan
    assert grid[0] > tiles_q > 1, "more than one output tile in each direction"
    assert grid[1] > 1 and w[0] % numba_conv2d.KB != 0, "a full and a partial channel block"
    assert chunk < x[1] and x[1] % chunk != 0, "several channel chunks, the last one partial"


@pytest.mark.parametrize("x_shape,w_shape,stride", [
    ((1, 1, 16, 16), (2, 1, 13, 13), 1),  # a 13x13 filter slice for KB channels overflows
    ((1, 1, 70, 70), (2, 1, 3, 3), 8),  # stride 8: an 8x8 output tile reads 59x59 inputs
], ids=["filter_13x13", "stride_8"])
def test_conv2d_smem_tiled_routes_large_footprints(x_shape, w_shape, stride):
    require_backend("numba")
    rng = np.random.default_rng(seed_for("conv2d-route", x_shape, w_shape))
    x, w = _ints(rng, x_shape), _ints(rng, w_shape)
    with pytest.raises(pk.Unsupported, match="shared"):
        pk.conv2d(x, w, stride=stride, backend="numba", variant="smem_tiled")
    # the default variant takes every input, these included
    y = pk.conv2d(x, w, stride=stride, backend="numba")
    np.testing.assert_array_equal(y, conv_reference(x, w, stride=(stride, stride)))

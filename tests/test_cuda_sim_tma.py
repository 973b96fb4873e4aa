"""The simulator's mbarrier objects and TMA tiled loads (csrc/sim/sim_tma.h, reached through
kernels/tma.cuh), driven by the probe kernels of csrc/sim/tma_probe.cu.

* The swizzle: the simulator's formula against tables transcribed from the CUDA C++ Programming
  Guide's TMA swizzle figures, and a TMA load's shared-memory bytes against the same tables.
* TMA 2-D tile loads of tensors that are not box multiples: the out-of-bounds part is zero.
* mbarrier phases: the ISA's completion rule (arrivals AND tx-count), parity and state waits,
  several phases in a loop.
* Planted bugs beside their correct twins: a missing wait and a wrong parity read NaN (the box is
  poisoned until its phase completes), a read that ignores the swizzle reads the wrong elements,
  an expect_tx larger than the copy is a reported deadlock instead of a hang, and a missing
  expect_tx lets the phase complete before the data lands. The same for a 2-stage TMA ->
  mma.sync pipeline (a producer warp, four consumer warps, full and empty barriers per stage):
  an off-by-one stage parity and a refill before the consumers' release.
"""
import time

import numpy as np
import pytest
from conftest import seed_for

from pykern._backends import cuda_simulator_enabled
from pykern._device import DeviceArray

pytestmark = pytest.mark.skipif(not cuda_simulator_enabled(),
                                reason="PYKERN_CUDA_SIM is not set: the cuda backend is a real GPU or absent")

ORDERS = [("forward", 0), ("reverse", 0), ("random", 1), ("random", 2)]

# The swizzle patterns as the CUDA C++ Programming Guide draws them (TMA, "swizzle patterns"):
# shared memory in 128-byte lines of eight 16-byte chunks; each cell is the index, within its own
# box row, of the chunk of the box that lands there. A box row is as wide as the span (32, 64 or
# 128 bytes), so a 128-byte line holds 4, 2 or 1 box rows; the pattern repeats after the lines
# listed (256, 512, 1024 bytes). 128B: chunk c of row r lands at c ^ (r % 8).
SWIZZLE_TABLES = {
    0: ["0 1 2 3 4 5 6 7"],
    32: ["0 1 0 1 0 1 0 1",
         "1 0 1 0 1 0 1 0"],
    64: ["0 1 2 3 0 1 2 3",
         "1 0 3 2 1 0 3 2",
         "2 3 0 1 2 3 0 1",
         "3 2 1 0 3 2 1 0"],
    128: ["0 1 2 3 4 5 6 7",
          "1 0 3 2 5 4 7 6",
          "2 3 0 1 6 7 4 5",
          "3 2 1 0 7 6 5 4",
          "4 5 6 7 0 1 2 3",
          "5 4 7 6 1 0 3 2",
          "6 7 4 5 2 3 0 1",
          "7 6 5 4 3 2 1 0"],
}


def table_layout(span, nbytes, row_bytes):
    """From the tables: for each 16-byte chunk position of a box of nbytes (rows of row_bytes,
    dense; for no swizzle, any rows: pass 128), the index of the box chunk that lands there."""
    lines = [list(map(int, line.split())) for line in SWIZZLE_TABLES[span]]
    per_row = row_bytes // 16
    at = []
    for p in range(nbytes // 16):
        row = p // per_row  # a chunk never leaves its box row
        at.append(row * per_row + lines[(p // 8) % len(lines)][p % 8] % per_row)
    return at


@pytest.mark.parametrize("span", [0, 32, 64, 128])
def test_swizzle_formula_matches_the_guide_tables(ext, span):
    """Two repeats of each pattern: where the simulator puts each chunk must be where the table
    shows it."""
    nbytes = 2048
    lands = ext.tma_swizzle_chunks(span, nbytes)  # logical chunk -> physical chunk
    held = [None] * len(lands)
    for logical, physical in enumerate(lands):
        assert held[physical] is None, f"span {span}: two chunks land at {physical}"
        held[physical] = logical
    assert held == table_layout(span, nbytes, span or 128)


# (swizzle span, element bytes, box_w, box_h, W, H): W and H not multiples of the box, so the
# last boxes of each row and column are partly out of bounds; W * element bytes is a multiple of
# 16 (the tensor map's row stride rule).
TILE_CASES = [
    (128, 4, 32, 8, 60, 45),
    (128, 2, 64, 5, 72, 23),
    (128, 1, 128, 3, 144, 7),
    (64, 4, 16, 8, 60, 21),
    (64, 8, 8, 4, 20, 10),
    (32, 4, 8, 6, 60, 13),
    (0, 4, 24, 7, 60, 16),
    (0, 2, 8, 16, 40, 33),
]


@pytest.mark.parametrize("span,eb,box_w,box_h,W,H", TILE_CASES,
                         ids=[f"sw{c[0]}-{c[1]}B-box{c[3]}x{c[2]}-{c[5]}x{c[4]}" for c in TILE_CASES])
def test_tma_tile_bytes_in_shared_memory(ext, span, eb, box_w, box_h, W, H):
    """Each block's shared box, byte for byte: numpy's box (zeros past the tensor's edge), its
    16-byte chunks placed by the transcribed tables."""
    rng = np.random.default_rng(seed_for("tma-raw", span, eb, box_w, box_h, W, H))
    src = rng.integers(1, 256, size=(H, W * eb), dtype=np.uint8)  # no zero byte: a dropped one shows
    tiles_y, tiles_x = -(-H // box_h), -(-W // box_w)
    box_bytes = box_h * box_w * eb
    out = DeviceArray.from_host(np.full(tiles_y * tiles_x * box_bytes, 0xAB, np.uint8))
    d_src = DeviceArray.from_host(src)
    ext.tma_tile("raw", "none", d_src.ptr, H, W, eb, box_h, box_w, span, out.ptr)
    got = out.copy_to_host().reshape(tiles_y * tiles_x, box_bytes // 16, 16)
    padded = np.zeros((tiles_y * box_h, tiles_x * box_w * eb), np.uint8)
    padded[:H, :W * eb] = src
    at = table_layout(span, box_bytes, box_w * eb if span else 128)
    for ty in range(tiles_y):
        for tx in range(tiles_x):
            box = padded[ty * box_h:(ty + 1) * box_h, tx * box_w * eb:(tx + 1) * box_w * eb].reshape(-1, 16)
            expected = box[at]
            np.testing.assert_array_equal(got[ty * tiles_x + tx], expected, err_msg=f"box ({ty}, {tx})")


@pytest.mark.parametrize("span,box_w", [(128, 32), (64, 16), (32, 8), (0, 12)])
def test_tma_tile_read_back_equals_numpy(ext, span, box_w):
    """float32 boxes read back through the kernel's own swizzle rule (kernels/tma.cuh) into an
    (H, W) matrix that is not a box multiple: exactly numpy's."""
    H, W = 37, 44
    rng = np.random.default_rng(seed_for("tma-logical", span))
    a = rng.standard_normal((H, W)).astype(np.float32)
    out = DeviceArray.from_host(np.full((H, W), np.nan, np.float32))
    da = DeviceArray.from_host(a)
    ext.tma_tile("logical", "none", da.ptr, H, W, 4, 8, box_w, span, out.ptr)
    np.testing.assert_array_equal(out.copy_to_host(), a)


def test_mbarrier_phase_rules(ext):
    """One mbarrier (count 2) through two phases: a phase completes only when its arrivals AND its
    tx-count are both done; parity p is complete once the current phase's parity is not p; a
    tx-count may dip below zero before its expect_tx."""
    out = DeviceArray.from_host(np.full(13, -1, np.int32))
    ext.mbarrier_semantics(out.ptr)
    assert out.copy_to_host().tolist() == [0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("order,seed", ORDERS, ids=[f"{o}{s or ''}" for o, s in ORDERS])
def test_mbarrier_phases_in_a_loop(ext, order, seed):
    """Five phases of a count-64 barrier, waited by parity and by an arrive's state in turn: each
    thread reads its neighbour's value of the same phase."""
    ext.sim_configure(order=order, seed=seed)
    try:
        out = DeviceArray.from_host(np.full((5, 64), np.nan, np.float32))
        ext.mbarrier_arrivals("none", 5, out.ptr)
    finally:
        ext.sim_configure(order="forward", seed=0)
    expected = np.array([[k * 1000 + (t + 1) % 64 for t in range(64)] for k in range(5)], np.float32)
    np.testing.assert_array_equal(out.copy_to_host(), expected)


@pytest.mark.parametrize("order,seed", ORDERS, ids=[f"{o}{s or ''}" for o, s in ORDERS])
def test_tma_boxes_streamed_through_one_barrier(ext, order, seed):
    """Six boxes through one buffer and one barrier, box k waited with parity k & 1; the last box
    is partly past the bottom edge and W < box_w."""
    H, W = 45, 29
    rng = np.random.default_rng(seed_for("tma-stream"))
    a = np.zeros((H, 32), np.float32)  # rows padded to 128 bytes: the row stride must be a multiple of 16
    a[:, :W] = rng.standard_normal((H, W))
    ext.sim_configure(order=order, seed=seed)
    try:
        out = DeviceArray.from_host(np.full((H, 32), np.nan, np.float32))
        da = DeviceArray.from_host(a)
        ext.tma_stream("none", da.ptr, H, 32, 8, 32, 128, out.ptr)
    finally:
        ext.sim_configure(order="forward", seed=0)
    np.testing.assert_array_equal(out.copy_to_host(), a)


# ---- planted bugs -----------------------------------------------------------------------------

def _run_planted(ext, kind, bug):
    """Runs probe `kind` with `bug` ("none": the correct twin); returns (got, expected)."""
    rng = np.random.default_rng(seed_for("tma-planted", kind))
    if kind == "tile":
        H, W = 21, 40
        a = rng.standard_normal((H, W)).astype(np.float32)
        out = DeviceArray.from_host(np.full((H, W), 7.0, np.float32))
        da = DeviceArray.from_host(a)
        ext.tma_tile("logical", bug, da.ptr, H, W, 4, 8, 32, 128, out.ptr)
        return out.copy_to_host(), a
    if kind == "stream":
        H = 20
        a = rng.standard_normal((H, 32)).astype(np.float32)
        out = DeviceArray.from_host(np.full((H, 32), 7.0, np.float32))
        da = DeviceArray.from_host(a)
        ext.tma_stream(bug, da.ptr, H, 32, 8, 32, 128, out.ptr)
        return out.copy_to_host(), a
    if kind == "pipeline":
        M, N, K = 80, 72, 136  # no multiple of the 64 x 64 x 64 tile: edges in M, N and K
        a = rng.integers(-4, 5, (M, K)).astype(np.float16)
        b = rng.integers(-4, 5, (K, N)).astype(np.float16)
        out = DeviceArray.from_host(np.full((M, N), 7.0, np.float32))
        da, db = DeviceArray.from_host(a), DeviceArray.from_host(b)
        ext.tma_pipeline(bug, da.ptr, db.ptr, out.ptr, M, N, K)
        return out.copy_to_host(), (a.astype(np.float64) @ b.astype(np.float64)).astype(np.float32)
    out = DeviceArray.from_host(np.full((3, 64), 7.0, np.float32))
    ext.mbarrier_arrivals(bug, 3, out.ptr)
    return out.copy_to_host(), np.array([[k * 1000 + (t + 1) % 64 for t in range(64)] for k in range(3)], np.float32)


# (probe, bug, how the simulator must catch it: "nan" in the result, "wrong" values, or a
# launch error matching the regex: the deadlock report of a phase that can never complete)
PLANTED = [
    ("tile", "missing_wait", "nan"),
    ("tile", "no_expect_tx", "nan"),
    ("tile", "read_unswizzled", "wrong"),
    ("tile", "expect_tx_over", r"deadlock .* never completes .*0 of 1 arrivals pending, tx-count 16 bytes never completed"),
    ("stream", "wrong_parity", "nan"),
    # The last thread to arrive in phase 1 has made phase 2 current, so its wait on parity 0 (phase
    # 2's own) can never succeed: a GPU would hang there.
    ("arrivals", "wrong_parity", r"deadlock .* never completes .*phase 2: 64 of 64 arrivals pending"),
    # The 2-stage TMA -> mma.sync pipeline: an off-by-one stage parity, a refill before release.
    ("pipeline", "stage_parity", "nan"),
    ("pipeline", "no_empty_wait", "nan"),
]
KINDS = sorted({k for k, _, _ in PLANTED})


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("order,seed", ORDERS, ids=[f"{o}{s or ''}" for o, s in ORDERS])
def test_planted_tma_twins_pass(ext, kind, order, seed):
    ext.sim_configure(order=order, seed=seed)
    try:
        got, expected = _run_planted(ext, kind, "none")
    finally:
        ext.sim_configure(order="forward", seed=0)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("kind,bug,caught_as", PLANTED, ids=[f"{k}-{b}" for k, b, _ in PLANTED])
@pytest.mark.parametrize("order,seed", ORDERS, ids=[f"{o}{s or ''}" for o, s in ORDERS])
def test_planted_tma_bug_is_caught(ext, kind, bug, caught_as, order, seed):
    """Every planted bug is caught in every thread order, and the way the simulator promises: the
    poisoned box reads NaN, an unswizzled read gives wrong numbers, a phase that can never
    complete is an error (promptly: the test would otherwise hang)."""
    ext.sim_configure(order=order, seed=seed)
    try:
        if caught_as not in ("nan", "wrong"):
            start = time.perf_counter()
            with pytest.raises(RuntimeError, match=caught_as):
                _run_planted(ext, kind, bug)
            assert time.perf_counter() - start < 30
            return
        got, expected = _run_planted(ext, kind, bug)
    finally:
        ext.sim_configure(order="forward", seed=0)
    if caught_as == "nan":
        assert np.isnan(got).any(), f"{kind}/{bug}: no NaN read ({order})"
    else:
        assert not np.isnan(got).any() and not np.array_equal(got, expected), f"{kind}/{bug}: not caught ({order})"


def test_tma_pipeline_reads_the_128b_swizzle_without_bank_conflicts(ext):
    """The pipeline's ldmatrix reads of 128B-swizzled TMA boxes: every 8x8 matrix in one
    wavefront (what the swizzle is for), and the product exact on small integers."""
    ext.sim_reset_stats()
    got, expected = _run_planted(ext, "pipeline", "none")
    np.testing.assert_array_equal(got, expected)
    stats = ext.sim_stats()
    assert stats["ldmatrix_matrices"] > 0 and stats["ldmatrix_extra_wavefronts"] == 0, stats


@pytest.mark.parametrize("what,match", [
    ("uninitialized", r"mbarrier.arrive on an mbarrier that mbarrier.init has not initialized"),
    ("too_many_arrivals", r"more arrivals in one phase than the count mbarrier.init gave \(1\)"),
    ("unaligned_destination", r"destination must be 1024-byte aligned"),
    ("bad_parity", r"phaseParity must be 0 or 1, got 2"),
])
def test_mbarrier_and_tma_misuse_is_reported(ext, what, match):
    out = DeviceArray.empty((1,), np.float32)
    with pytest.raises(RuntimeError, match=match):
        ext.tma_misuse(what, out.ptr)


@pytest.mark.parametrize("W,box_w,span,match", [
    (44, 16, 128, r"narrower than its span is not simulated"),
    (64, 64, 128, r"inner dimension \(256 bytes\) must not exceed the swizzle span \(128\)"),
    (45, 32, 128, r"globalStrides must be multiples of 16"),
    (60, 300, 0, r"boxDim must be in \[1, 256\]"),
])
def test_tensor_map_encoder_refuses_what_the_driver_or_the_simulator_does(ext, W, box_w, span, match):
    a = DeviceArray.from_host(np.zeros((8, W), np.float32))
    out = DeviceArray.from_host(np.zeros((8, W), np.float32))
    with pytest.raises(ValueError, match=match):
        ext.tma_tile("logical", "none", a.ptr, 8, W, 4, 8, box_w, span, out.ptr)

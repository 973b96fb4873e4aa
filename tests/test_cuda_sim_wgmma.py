"""The simulator's warpgroup-level matrix instructions (csrc/sim/sim_wgmma.h, reached through
kernels/wgmma.cuh), driven by the probe kernels of csrc/sim/wgmma_probe.cu.

* The accumulator layout: the simulator's formula against a table transcribed from the PTX ISA's
  figure of the wgmma .m64nNk16 D fragment.
* The matrix descriptors: the shared address the simulator decodes for each element of a 64 x 16
  operand tile, against the ISA's canonical layouts (written below in the ISA's own CuTe notation
  and evaluated here) and the swizzle tables of the CUDA guide (tests/test_cuda_sim_tma.py's).
* Whole GEMMs through TMA and wgmma: every swizzle, K-major and MN-major A and B, f16 and bf16,
  exact on small integers and within the repo's tolerance (pykern._check) on random values.
* Planted bugs beside their correct twins, in four thread orders: a missing wait_group reads NaN
  (or exits with wgmma in flight: an error), a descriptor swizzle that is not the TMA's and a wrong
  SBO or LBO read the wrong elements, and in a 2-stage TMA -> wgmma pipeline a wait_group one
  group short and an empty-barrier arrival before the wait_group compute on a refilled (poisoned)
  stage.
* Misuse the simulator refuses: a partial warpgroup, diverging descriptors, a descriptor of static
  shared memory, accumulators written while in flight, a warp that left its warpgroup.
"""
import re

import numpy as np
import pytest
from conftest import seed_for
from test_cuda_sim_tma import SWIZZLE_TABLES

from pykern._backends import cuda_simulator_enabled
from pykern._check import compare
from pykern._device import DeviceArray

pytestmark = pytest.mark.skipif(not cuda_simulator_enabled(),
                                reason="PYKERN_CUDA_SIM is not set: the cuda backend is a real GPU or absent")

ORDERS = [("forward", 0), ("reverse", 0), ("random", 1), ("random", 2)]
ORDER_IDS = [f"{o}{s or ''}" for o, s in ORDERS]

# ---- the accumulator layout ---------------------------------------------------------------------

# wgmma .m64nNk16 D (.f32), as the ISA's figure draws warp 0 of the warpgroup: rows 0-15, columns
# 0-15 (two of the N / 8 column blocks), each cell `lane:register`. The figure's other warps are
# the same 16 rows lower per warp (warp w: rows 16w ..), and each further block of 8 columns
# repeats the first with the register index 4 higher per block.
D_M64NNK16_WARP0 = [
    "0:0 0:1 1:0 1:1 2:0 2:1 3:0 3:1 0:4 0:5 1:4 1:5 2:4 2:5 3:4 3:5",
    "4:0 4:1 5:0 5:1 6:0 6:1 7:0 7:1 4:4 4:5 5:4 5:5 6:4 6:5 7:4 7:5",
    "8:0 8:1 9:0 9:1 10:0 10:1 11:0 11:1 8:4 8:5 9:4 9:5 10:4 10:5 11:4 11:5",
    "12:0 12:1 13:0 13:1 14:0 14:1 15:0 15:1 12:4 12:5 13:4 13:5 14:4 14:5 15:4 15:5",
    "16:0 16:1 17:0 17:1 18:0 18:1 19:0 19:1 16:4 16:5 17:4 17:5 18:4 18:5 19:4 19:5",
    "20:0 20:1 21:0 21:1 22:0 22:1 23:0 23:1 20:4 20:5 21:4 21:5 22:4 22:5 23:4 23:5",
    "24:0 24:1 25:0 25:1 26:0 26:1 27:0 27:1 24:4 24:5 25:4 25:5 26:4 26:5 27:4 27:5",
    "28:0 28:1 29:0 29:1 30:0 30:1 31:0 31:1 28:4 28:5 29:4 29:5 30:4 30:5 31:4 31:5",
    "0:2 0:3 1:2 1:3 2:2 2:3 3:2 3:3 0:6 0:7 1:6 1:7 2:6 2:7 3:6 3:7",
    "4:2 4:3 5:2 5:3 6:2 6:3 7:2 7:3 4:6 4:7 5:6 5:7 6:6 6:7 7:6 7:7",
    "8:2 8:3 9:2 9:3 10:2 10:3 11:2 11:3 8:6 8:7 9:6 9:7 10:6 10:7 11:6 11:7",
    "12:2 12:3 13:2 13:3 14:2 14:3 15:2 15:3 12:6 12:7 13:6 13:7 14:6 14:7 15:6 15:7",
    "16:2 16:3 17:2 17:3 18:2 18:3 19:2 19:3 16:6 16:7 17:6 17:7 18:6 18:7 19:6 19:7",
    "20:2 20:3 21:2 21:3 22:2 22:3 23:2 23:3 20:6 20:7 21:6 21:7 22:6 22:7 23:6 23:7",
    "24:2 24:3 25:2 25:3 26:2 26:3 27:2 27:3 24:6 24:7 25:6 25:7 26:6 26:7 27:6 27:7",
    "28:2 28:3 29:2 29:3 30:2 30:3 31:2 31:3 28:6 28:7 29:6 29:7 30:6 30:7 31:6 31:7",
]


def figure_positions(n):
    """From the figure: for each warpgroup thread, the (row, col) of each of its n / 2 registers."""
    where = [[None] * (n // 2) for _ in range(128)]
    for r, line in enumerate(D_M64NNK16_WARP0):
        for c, cell in enumerate(line.split()):
            lane, reg = map(int, cell.split(":"))
            for warp in range(4):
                for block in range(0, n // 8, 2):  # the figure's two blocks, repeated across N
                    if c // 8 + block < n // 8:
                        where[32 * warp + lane][reg + 4 * block] = (16 * warp + r, c + 8 * block)
    return where


@pytest.mark.parametrize("n", [8, 64, 256])
def test_accumulator_layout_matches_the_figure(ext, n):
    """Every register of every thread where the figure puts it, each (row, col) held once."""
    expected = figure_positions(n)
    got = [list(map(tuple, regs)) for regs in ext.wgmma_acc_layout(n)]
    assert got == expected
    cells = [p for regs in got for p in regs]
    assert sorted(cells) == [(r, c) for r in range(64) for c in range(n)]


# ---- matrix descriptors -----------------------------------------------------------------------

# The canonical layouts of a 64 x 16 operand tile (PTX ISA, "Shared Memory Matrix Layout"), in the
# ISA's CuTe notation: (MN shape, K shape):(MN strides, K strides), in elements; T = 8 elements per
# 16 bytes, W = span / 16; "1T" and "WT" are T and W*T elements, SBO and LBO the descriptor's byte
# offsets (converted to elements). m and k stand for "as many as the tile needs".
CANONICAL = {
    ("K", 0): "((8,m),(T,2k)):((1T,SBO),(1,LBO))",
    ("K", "swizzled"): "((8,m),(T,2k)):((WT,SBO),(1,T))",
    ("MN", 0): "((T,1,m),(8,k)):((1,T,SBO),(1T,LBO))",
    ("MN", "swizzled"): "((T,W,m),(8,k)):((1,T,LBO),(WT,SBO))",
}


def _modes(text):
    """'((a,b),(c,d))' -> [['a', 'b'], ['c', 'd']]."""
    return [group.split(",") for group in re.findall(r"\(([^()]*)\)", text)]


def canonical_offset(layout, span, lbo, sbo, mn, k):
    """The element offset of (mn, k) under a CANONICAL layout string: each coordinate split
    into its mode's digits (the first size fastest, the last taking what is left), each digit
    times its stride."""
    shape_text, stride_text = layout.split(":")
    sizes = {"T": 8, "W": span // 16}
    strides = {"T": 8, "1T": 8, "WT": span // 16 * 8, "SBO": sbo // 2, "LBO": lbo // 2}
    offset = 0
    for coord, shape, stride in zip((mn, k), _modes(shape_text), _modes(stride_text)):
        for i, (size, step) in enumerate(zip(shape, stride)):
            if i == len(shape) - 1:
                digit = coord
            else:
                n = sizes[size] if size in sizes else int(size)
                digit, coord = coord % n, coord // n
            offset += digit * (strides[step] if step in strides else int(step))
    return offset


def table_swizzle(span, addr):
    """Where the guide's swizzle tables put byte addr (the inverse of their 'which chunk lands
    here', which is a permutation within each 128-byte line)."""
    if span == 0:
        return addr
    lines = [list(map(int, line.split())) for line in SWIZZLE_TABLES[span]]
    line, chunk = addr // 128, (addr // 16) % 8
    per_row = span // 16
    row = lines[line % len(lines)]
    for pos in range(8):  # the position whose occupant is our chunk of the same box row
        if pos // per_row == chunk // per_row and row[pos] == chunk % per_row:
            return line * 128 + pos * 16 + addr % 16
    raise AssertionError("no position holds the chunk")


# (major, span, start, lbo, sbo): start a multiple of 16 (for the swizzled ones an atom-aligned
# base plus a k16 step's 32 bytes, or 16 * span for MN-major); lbo and sbo not the defaults a
# kernel uses, so a formula that ignores one fails.
DESCRIPTORS = [
    ("K", 0, 2048, 1024, 128), ("K", 0, 512, 256, 2048),
    ("K", 32, 1024 + 32 * 0, 16, 256), ("K", 64, 4096 + 32, 16, 512), ("K", 128, 8192 + 64, 16, 1024),
    ("K", 128, 1024 + 32, 16, 2048),
    ("MN", 0, 4096, 128, 1024), ("MN", 0, 256, 384, 512),
    ("MN", 32, 2048 + 32 * 16, 4096, 256), ("MN", 64, 0, 8192, 512), ("MN", 128, 1024 + 128 * 16, 8192, 1024),
]


@pytest.mark.parametrize("major,span,start,lbo,sbo", DESCRIPTORS,
                         ids=[f"{d[0]}-sw{d[1]}-{d[2]}-{d[3]}-{d[4]}" for d in DESCRIPTORS])
def test_descriptor_addresses_match_the_canonical_layouts(ext, major, span, start, lbo, sbo):
    """Each element's address, before and after the swizzle, as the canonical layout and the
    guide's tables give it; for the descriptor built with the ISA's bit fields."""
    mode = {0: 0, 128: 1, 64: 2, 32: 3}[span]
    desc = (start >> 4) | ((lbo >> 4) << 16) | ((sbo >> 4) << 32) | (mode << 62)
    got = ext.wgmma_descriptor_addresses(desc, major == "MN")
    layout = CANONICAL[(major, 0 if span == 0 else "swizzled")]
    for mn in range(64):
        for k in range(16):
            before = start + 2 * canonical_offset(layout, span, lbo, sbo, mn, k)
            assert got[mn * 16 + k] == (before, table_swizzle(span, before)), (mn, k)


# ---- whole GEMMs through TMA and wgmma ------------------------------------------------------------

def _bf16():
    return pytest.importorskip("ml_dtypes", reason="ml_dtypes needed for bfloat16").bfloat16


def _run_tile(ext, a, b, dtype, span, trans_a, trans_b, bug="none"):
    """c = a (64, K) @ b (K, 64) through the tile probe, each operand stored K-major or MN-major."""
    K = a.shape[1]
    stored_a = np.ascontiguousarray(a.T if trans_a else a)
    stored_b = np.ascontiguousarray(b if trans_b else b.T)
    out = DeviceArray.from_host(np.full((64, 64), 7.0, np.float32))
    da = DeviceArray.from_host(stored_a.view(np.uint16))
    db = DeviceArray.from_host(stored_b.view(np.uint16))
    ext.wgmma_tile(dtype, bug, da.ptr, db.ptr, out.ptr, K, span, trans_a, trans_b)
    return out.copy_to_host()


MAJORS = [(False, False), (False, True), (True, False), (True, True)]
MAJOR_IDS = ["A_K-B_K", "A_K-B_MN", "A_MN-B_K", "A_MN-B_MN"]


@pytest.mark.parametrize("span", [0, 32, 64, 128])
@pytest.mark.parametrize("trans_a,trans_b", MAJORS, ids=MAJOR_IDS)
def test_tma_wgmma_tile_is_exact_on_integers(ext, span, trans_a, trans_b):
    """A box the TMA wrote with a swizzle, read by descriptors of the same swizzle: K / 16 chained
    mma_asyncs give numpy's product exactly (small integers: every sum is exact in fp32)."""
    rng = np.random.default_rng(seed_for("wgmma-tile", span, trans_a, trans_b))
    a = rng.integers(-8, 9, (64, 64)).astype(np.float16)
    b = rng.integers(-8, 9, (64, 64)).astype(np.float16)
    got = _run_tile(ext, a, b, "f16", span, trans_a, trans_b)
    np.testing.assert_array_equal(got, a.astype(np.float64) @ b.astype(np.float64))


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
@pytest.mark.parametrize("span,trans_a,trans_b,K", [(128, False, True, 64), (64, True, False, 32)])
def test_tma_wgmma_tile_within_the_tolerance(ext, dtype, span, trans_a, trans_b, K):
    """Random normal inputs: within pykern's tolerance policy of the float64 product."""
    np_dtype = np.float16 if dtype == "f16" else _bf16()
    rng = np.random.default_rng(seed_for("wgmma-tol", dtype, span, K))
    a = rng.standard_normal((64, K)).astype(np_dtype)
    b = rng.standard_normal((K, 64)).astype(np_dtype)
    got = _run_tile(ext, a, b, dtype, span, trans_a, trans_b)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    result = compare(got, a64 @ b64, np.abs(a64) @ np.abs(b64), "float16" if dtype == "f16" else "bfloat16")
    assert result.ok, result.message()


# ---- planted bugs ---------------------------------------------------------------------------------

def _run_planted(ext, kind, bug, span):
    """Runs probe `kind` with `bug` ("none": the correct twin); returns (got, expected)."""
    rng = np.random.default_rng(seed_for("wgmma-planted", kind, span))
    if kind == "tile":
        a = rng.integers(-4, 5, (64, 64)).astype(np.float16)
        b = rng.integers(-4, 5, (64, 64)).astype(np.float16)
        got = _run_tile(ext, a, b, "f16", span, False, True, bug)
        return got, a.astype(np.float64) @ b.astype(np.float64)
    M, N, K = 80, 72, 136  # no multiple of the 64 x 64 x 64 tile: edges in M, N and K; 3 k-tiles
    a = rng.integers(-4, 5, (M, K)).astype(np.float16)
    b = rng.integers(-4, 5, (K, N)).astype(np.float16)
    out = DeviceArray.from_host(np.full((M, N), 7.0, np.float32))
    da, db = DeviceArray.from_host(a), DeviceArray.from_host(b)
    ext.wgmma_pipeline(bug, da.ptr, db.ptr, out.ptr, M, N, K)
    return out.copy_to_host(), a.astype(np.float64) @ b.astype(np.float64)


# (probe, bug, swizzle span, how the simulator must catch it: "nan" in the result, "wrong" values,
# or a launch error matching the regex)
PLANTED = [
    ("tile", "missing_wait", 128, "nan"),           # the accumulators read before wait_group
    ("tile", "swizzle_mismatch", 128, "wrong"),     # TMA 128B, A's descriptor 64B
    ("tile", "wrong_sbo", 128, "wrong"),            # A's SBO half the 8 rows' 1024 bytes
    ("tile", "wrong_lbo", 64, "wrong"),             # B (MN-major, 32 columns a swizzle row): LBO halved
    ("pipeline", "missing_wait", 128, r"exited with wgmma.mma_async operations in flight"),
    ("pipeline", "wait_short", 128, "nan"),         # wait_group 1: the stage refilled under its group
    ("pipeline", "early_release", 128, "nan"),      # empty arrival before wait_group
]
TWINS = sorted({(k, s) for k, _, s, _ in PLANTED})


@pytest.mark.parametrize("kind,span", TWINS, ids=[f"{k}-sw{s}" for k, s in TWINS])
@pytest.mark.parametrize("order,seed", ORDERS, ids=ORDER_IDS)
def test_planted_wgmma_twins_pass(ext, kind, span, order, seed):
    ext.sim_configure(order=order, seed=seed)
    try:
        got, expected = _run_planted(ext, kind, "none", span)
    finally:
        ext.sim_configure(order="forward", seed=0)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("kind,bug,span,caught_as", PLANTED, ids=[f"{k}-{b}" for k, b, _, _ in PLANTED])
@pytest.mark.parametrize("order,seed", ORDERS, ids=ORDER_IDS)
def test_planted_wgmma_bug_is_caught(ext, kind, bug, span, caught_as, order, seed):
    """Every planted bug is caught in every thread order, the way the simulator promises: NaN
    accumulators or a poisoned stage read NaN, a wrong layout reads the wrong (finite) elements,
    a thread leaving with wgmma in flight is an error."""
    ext.sim_configure(order=order, seed=seed)
    try:
        if caught_as not in ("nan", "wrong"):
            with pytest.raises(RuntimeError, match=caught_as):
                _run_planted(ext, kind, bug, span)
            return
        got, expected = _run_planted(ext, kind, bug, span)
    finally:
        ext.sim_configure(order="forward", seed=0)
    if caught_as == "nan":
        assert np.isnan(got).any(), f"{kind}/{bug}: no NaN read ({order})"
    else:
        assert not np.isnan(got).any() and not np.array_equal(got, expected), f"{kind}/{bug}: not caught ({order})"


@pytest.mark.parametrize("what,match", [
    ("partial_warpgroup", r"warpgroup-collective \(.sync.aligned\): the block's last warpgroup has fewer than 128"),
    ("divergent_descriptors", r"threads of one warpgroup gave different descriptors"),
    ("static_shared", r"wgmma operands in the launch's dynamic shared memory only"),
    ("written_in_flight", r"accumulator registers of an in-flight wgmma.mma_async were written"),
    ("exited_group", r"waits for 32 threads of its warpgroup that have exited"),
])
def test_wgmma_misuse_is_reported(ext, what, match):
    out = DeviceArray.empty((64,), np.float32)
    with pytest.raises(RuntimeError, match=match):
        ext.wgmma_misuse(what, out.ptr)

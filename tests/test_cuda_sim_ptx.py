"""The simulator's warp-level matrix PTX (csrc/sim/sim_ptx.h, reached through kernels/mma.cuh):
ldmatrix .m8n8 .x1/.x2/.x4 (.trans) and mma.sync m16n8k16 (f16, bf16) and m16n8k8 (tf32).

The fragment layouts below are transcribed from the PTX ISA's figures ("Matrix Fragments for
mma.m16n8k16 / mma.m16n8k8", "ldmatrix"), one string per figure row, each cell `lane:element`
naming the lane and the element of its fragment that holds that row and column. They are kept
apart from the simulator's formulas on purpose: the formulas are checked against them, and then
real instructions are run on fragments packed by these tables, so a wrong formula or a wrong
lane mapping inside an instruction fails here.
"""
import numpy as np
import pytest
from conftest import seed_for

from pykern._backends import cuda_simulator_enabled
from pykern._device import DeviceArray

pytestmark = pytest.mark.skipif(not cuda_simulator_enabled(),
                                reason="PYKERN_CUDA_SIM is not set: the cuda backend is a real GPU or absent")

# m16n8k16 .f16/.bf16, matrix A: 16 rows x 16 columns, elements a0..a7 (two per register).
A_M16N8K16 = [
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
# m16n8k16 .f16/.bf16, matrix B: 16 rows (k) x 8 columns (n), elements b0..b3 (two per register).
B_M16N8K16 = [
    "0:0 4:0 8:0 12:0 16:0 20:0 24:0 28:0",
    "0:1 4:1 8:1 12:1 16:1 20:1 24:1 28:1",
    "1:0 5:0 9:0 13:0 17:0 21:0 25:0 29:0",
    "1:1 5:1 9:1 13:1 17:1 21:1 25:1 29:1",
    "2:0 6:0 10:0 14:0 18:0 22:0 26:0 30:0",
    "2:1 6:1 10:1 14:1 18:1 22:1 26:1 30:1",
    "3:0 7:0 11:0 15:0 19:0 23:0 27:0 31:0",
    "3:1 7:1 11:1 15:1 19:1 23:1 27:1 31:1",
    "0:2 4:2 8:2 12:2 16:2 20:2 24:2 28:2",
    "0:3 4:3 8:3 12:3 16:3 20:3 24:3 28:3",
    "1:2 5:2 9:2 13:2 17:2 21:2 25:2 29:2",
    "1:3 5:3 9:3 13:3 17:3 21:3 25:3 29:3",
    "2:2 6:2 10:2 14:2 18:2 22:2 26:2 30:2",
    "2:3 6:3 10:3 14:3 18:3 22:3 26:3 30:3",
    "3:2 7:2 11:2 15:2 19:2 23:2 27:2 31:2",
    "3:3 7:3 11:3 15:3 19:3 23:3 27:3 31:3",
]
# Accumulators C and D (.f32) of both shapes: 16 rows x 8 columns, elements c0..c3.
CD_M16N8 = [
    "0:0 0:1 1:0 1:1 2:0 2:1 3:0 3:1",
    "4:0 4:1 5:0 5:1 6:0 6:1 7:0 7:1",
    "8:0 8:1 9:0 9:1 10:0 10:1 11:0 11:1",
    "12:0 12:1 13:0 13:1 14:0 14:1 15:0 15:1",
    "16:0 16:1 17:0 17:1 18:0 18:1 19:0 19:1",
    "20:0 20:1 21:0 21:1 22:0 22:1 23:0 23:1",
    "24:0 24:1 25:0 25:1 26:0 26:1 27:0 27:1",
    "28:0 28:1 29:0 29:1 30:0 30:1 31:0 31:1",
    "0:2 0:3 1:2 1:3 2:2 2:3 3:2 3:3",
    "4:2 4:3 5:2 5:3 6:2 6:3 7:2 7:3",
    "8:2 8:3 9:2 9:3 10:2 10:3 11:2 11:3",
    "12:2 12:3 13:2 13:3 14:2 14:3 15:2 15:3",
    "16:2 16:3 17:2 17:3 18:2 18:3 19:2 19:3",
    "20:2 20:3 21:2 21:3 22:2 22:3 23:2 23:3",
    "24:2 24:3 25:2 25:3 26:2 26:3 27:2 27:3",
    "28:2 28:3 29:2 29:3 30:2 30:3 31:2 31:3",
]
# m16n8k8 .tf32, matrix A: 16 rows x 8 columns, elements a0..a3 (one per register).
A_M16N8K8_TF32 = [
    "0:0 1:0 2:0 3:0 0:2 1:2 2:2 3:2",
    "4:0 5:0 6:0 7:0 4:2 5:2 6:2 7:2",
    "8:0 9:0 10:0 11:0 8:2 9:2 10:2 11:2",
    "12:0 13:0 14:0 15:0 12:2 13:2 14:2 15:2",
    "16:0 17:0 18:0 19:0 16:2 17:2 18:2 19:2",
    "20:0 21:0 22:0 23:0 20:2 21:2 22:2 23:2",
    "24:0 25:0 26:0 27:0 24:2 25:2 26:2 27:2",
    "28:0 29:0 30:0 31:0 28:2 29:2 30:2 31:2",
    "0:1 1:1 2:1 3:1 0:3 1:3 2:3 3:3",
    "4:1 5:1 6:1 7:1 4:3 5:3 6:3 7:3",
    "8:1 9:1 10:1 11:1 8:3 9:3 10:3 11:3",
    "12:1 13:1 14:1 15:1 12:3 13:3 14:3 15:3",
    "16:1 17:1 18:1 19:1 16:3 17:3 18:3 19:3",
    "20:1 21:1 22:1 23:1 20:3 21:3 22:3 23:3",
    "24:1 25:1 26:1 27:1 24:3 25:3 26:3 27:3",
    "28:1 29:1 30:1 31:1 28:3 29:3 30:3 31:3",
]
# m16n8k8 .tf32, matrix B: 8 rows (k) x 8 columns (n), elements b0, b1.
B_M16N8K8_TF32 = [
    "0:0 4:0 8:0 12:0 16:0 20:0 24:0 28:0",
    "1:0 5:0 9:0 13:0 17:0 21:0 25:0 29:0",
    "2:0 6:0 10:0 14:0 18:0 22:0 26:0 30:0",
    "3:0 7:0 11:0 15:0 19:0 23:0 27:0 31:0",
    "0:1 4:1 8:1 12:1 16:1 20:1 24:1 28:1",
    "1:1 5:1 9:1 13:1 17:1 21:1 25:1 29:1",
    "2:1 6:1 10:1 14:1 18:1 22:1 26:1 30:1",
    "3:1 7:1 11:1 15:1 19:1 23:1 27:1 31:1",
]
# ldmatrix .m8n8 .b16, one 8x8 matrix as stored (row r is the 16 bytes lane r's address names);
# element 0/1 is the low/high half of the lane's register for that matrix.
LDMATRIX = [
    "0:0 0:1 1:0 1:1 2:0 2:1 3:0 3:1",
    "4:0 4:1 5:0 5:1 6:0 6:1 7:0 7:1",
    "8:0 8:1 9:0 9:1 10:0 10:1 11:0 11:1",
    "12:0 12:1 13:0 13:1 14:0 14:1 15:0 15:1",
    "16:0 16:1 17:0 17:1 18:0 18:1 19:0 19:1",
    "20:0 20:1 21:0 21:1 22:0 22:1 23:0 23:1",
    "24:0 24:1 25:0 25:1 26:0 26:1 27:0 27:1",
    "28:0 28:1 29:0 29:1 30:0 30:1 31:0 31:1",
]
# ldmatrix .trans: the same stored matrix, each lane receiving a pair from one column.
LDMATRIX_TRANS = [
    "0:0 4:0 8:0 12:0 16:0 20:0 24:0 28:0",
    "0:1 4:1 8:1 12:1 16:1 20:1 24:1 28:1",
    "1:0 5:0 9:0 13:0 17:0 21:0 25:0 29:0",
    "1:1 5:1 9:1 13:1 17:1 21:1 25:1 29:1",
    "2:0 6:0 10:0 14:0 18:0 22:0 26:0 30:0",
    "2:1 6:1 10:1 14:1 18:1 22:1 26:1 30:1",
    "3:0 7:0 11:0 15:0 19:0 23:0 27:0 31:0",
    "3:1 7:1 11:1 15:1 19:1 23:1 27:1 31:1",
]

FIGURES = {"a_m16n8k16": A_M16N8K16, "b_m16n8k16": B_M16N8K16, "cd_m16n8": CD_M16N8,
           "a_m16n8k8_tf32": A_M16N8K8_TF32, "b_m16n8k8_tf32": B_M16N8K8_TF32,
           "ldmatrix": LDMATRIX, "ldmatrix_trans": LDMATRIX_TRANS}


def positions(figure):
    """{(lane, element): (row, col)} from a figure's rows; every cell must name a distinct slot."""
    pos = {}
    for r, line in enumerate(figure):
        for c, cell in enumerate(line.split()):
            lane, elem = map(int, cell.split(":"))
            assert (lane, elem) not in pos, f"figure names {cell} twice"
            pos[lane, elem] = (r, c)
    assert len({len(line.split()) for line in figure}) == 1
    return pos


@pytest.mark.parametrize("fragment", sorted(FIGURES))
def test_layout_formulas_match_the_figures(ext, fragment):
    pos = positions(FIGURES[fragment])
    formulas = ext.ptx_layout(fragment)
    assert len(formulas) == 32
    per_lane = len(pos) // 32
    for lane, elems in enumerate(formulas):
        assert len(elems) == per_lane, f"lane {lane}"
        for i, rc in enumerate(elems):
            assert tuple(rc) == pos[lane, i], f"{fragment}: lane {lane} element {i} at {tuple(rc)}, figure {pos[lane, i]}"


def _ints(rng, shape):
    x = rng.integers(-4, 5, size=shape).astype(np.float64)
    x[x == 0] = 1  # no zeros: an element never read would go unnoticed
    return x


def _round16(x, kind):
    """x rounded to fp16 or bf16: its float64 values and its 16-bit patterns."""
    if kind == "bf16":
        y = x.astype(pytest.importorskip("ml_dtypes", reason="ml_dtypes needed for bfloat16").bfloat16)
    else:
        y = x.astype(np.float16)
    return y.astype(np.float64), y.view(np.uint16)


def _round_tf32(x):
    """x rounded to tf32 (10 mantissa bits, to nearest; ties away, as cvt.rna): values and fp32 patterns."""
    bits = (x.astype(np.float32).view(np.uint32) + np.uint32(0x1000)) & np.uint32(0xFFFFE000)
    return bits.view(np.float32).astype(np.float64), bits


def _registers(figure, regs, per_reg, bits):
    """Lane-major registers (32, regs) holding the elements whose bit patterns are `bits` (a
    matrix), each where the figure puts it, per_reg to a 32-bit register, the first low."""
    out = np.zeros((32, regs), np.uint32)
    for (lane, elem), (r, c) in positions(figure).items():
        out[lane, elem // per_reg] |= np.uint32(bits[r, c]) << np.uint32(32 // per_reg * (elem % per_reg))
    return out


@pytest.mark.parametrize("kind", ["f16", "bf16", "tf32"])
@pytest.mark.parametrize("values", ["ints", "normal"])
def test_mma_sync_on_fragments_packed_by_the_figures(ext, kind, values):
    """d = a @ b + c, with each lane's registers packed from the transcribed figures: exact on
    small integers, and on random normals within fp32 accumulation's rounding."""
    rng = np.random.default_rng(seed_for("ptx-mma", kind, values))
    k = 8 if kind == "tf32" else 16
    if values == "ints":
        a, b, c = _ints(rng, (16, k)), _ints(rng, (k, 8)), _ints(rng, (16, 8))
    else:
        a, b, c = rng.standard_normal((16, k)), rng.standard_normal((k, 8)), rng.standard_normal((16, 8))
    c = c.astype(np.float32)
    if kind == "tf32":
        (a, a_bits), (b, b_bits) = _round_tf32(a), _round_tf32(b)
        ra, rb = _registers(A_M16N8K8_TF32, 4, 1, a_bits), _registers(B_M16N8K8_TF32, 2, 1, b_bits)
    else:
        (a, a_bits), (b, b_bits) = _round16(a, kind), _round16(b, kind)
        ra, rb = _registers(A_M16N8K16, 4, 2, a_bits), _registers(B_M16N8K16, 2, 2, b_bits)
    cd = positions(CD_M16N8)
    rc = np.zeros((32, 4), np.float32)
    for (lane, elem), (r, col) in cd.items():
        rc[lane, elem] = c[r, col]
    da, db, dc = DeviceArray.from_host(ra), DeviceArray.from_host(rb), DeviceArray.from_host(rc)
    dd = DeviceArray.from_host(np.full((32, 4), np.nan, np.float32))
    ext.ptx_mma(kind, da.ptr, db.ptr, dc.ptr, dd.ptr)
    regs = dd.copy_to_host()
    got = np.full((16, 8), np.nan)
    for (lane, elem), (r, col) in cd.items():
        got[r, col] = regs[lane, elem]
    expected = a @ b + c.astype(np.float64)
    if values == "ints":
        np.testing.assert_array_equal(got, expected)
    else:  # k fp32 additions of exact products: |error| <= k * 2^-24 * sum of |terms|
        bound = (k + 1) * 2.0**-24 * (np.abs(a) @ np.abs(b) + np.abs(c))
        assert np.all(np.abs(got - expected) <= bound), np.max(np.abs(got - expected) / bound)


@pytest.mark.parametrize("count", [1, 2, 4])
@pytest.mark.parametrize("trans", [False, True], ids=["rows", "trans"])
def test_ldmatrix_puts_each_element_where_the_figure_says(ext, count, trans):
    """Every element distinct, row addresses in a shuffled order: lane 8i + j names the source
    row that becomes row j of matrix i, and each lane's register i must hold the pair the figure
    gives it."""
    rng = np.random.default_rng(seed_for("ptx-ldmatrix", count, trans))
    src = rng.permutation(32 * 8).astype(np.uint16).reshape(32, 8) + np.uint16(1)
    rows = rng.permutation(32).astype(np.int32)
    out = DeviceArray.from_host(np.zeros((32, 4), np.uint32))
    d_src, d_rows = DeviceArray.from_host(src), DeviceArray.from_host(rows)
    ext.ptx_ldmatrix(count, trans, d_src.ptr, d_rows.ptr, out.ptr)
    regs = out.copy_to_host()
    pos = positions(LDMATRIX_TRANS if trans else LDMATRIX)
    for i in range(count):
        for (lane, half), (r, c) in pos.items():
            got = (int(regs[lane, i]) >> (16 * half)) & 0xFFFF
            assert got == src[rows[8 * i + r], c], f"x{count} matrix {i}: lane {lane} half {half}"
    assert not regs[:, count:].any(), "registers past the count were written"


def test_ldmatrix_counts_bank_conflicts(ext):
    """Rows 128 bytes apart share a 4-bank group: an 8x8 matrix whose rows fall 4 to a group
    takes 4 wavefronts (3 extra); consecutive rows take 1."""
    src = DeviceArray.from_host(np.arange(1, 257, dtype=np.uint16).reshape(32, 8))
    out = DeviceArray.empty((32, 4), np.uint32)
    for rows, extra in [(np.arange(32), 0), (np.array([0, 8, 16, 24, 1, 9, 17, 25] * 4), 3)]:
        d_rows = DeviceArray.from_host(rows.astype(np.int32))
        ext.sim_reset_stats()
        ext.ptx_ldmatrix(1, False, src.ptr, d_rows.ptr, out.ptr)
        stats = ext.sim_stats()
        assert (stats["ldmatrix_matrices"], stats["ldmatrix_extra_wavefronts"]) == (1, extra)

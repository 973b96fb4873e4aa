"""pykern's CUDA C++ simulator (pykern._cuda_sim, csrc/sim/): that it catches the bugs it exists
to catch, refuses what a GPU refuses, and runs what the generated tests cannot reach.

* Planted bugs (csrc/sim/planted.cu): each family's correct kernel passes under every thread
  order and its broken twin fails, so a passing CUDA test under the simulator means something.
* Launch checks: too many threads, grid.y over 65535, > 48 KiB of dynamic shared memory without
  the opt-in, a __syncthreads that some threads never reach, and writes just past the end of a
  device allocation or of the dynamic shared memory are CUDA errors, not hangs or heap damage.
* Every CUDA C++ variant under reverse and seeded random thread orders, and on an sm_75 device.

All of it runs only where PYKERN_CUDA_SIM=1 (tests/conftest.py sets it without a CUDA driver).
"""
import numpy as np
import pytest
from conftest import seed_for

import pykern as pk
from pykern._backends import cuda_simulator_enabled
from pykern._device import DeviceArray

pytestmark = pytest.mark.skipif(not cuda_simulator_enabled(),
                                reason="PYKERN_CUDA_SIM is not set: the cuda backend is a real GPU or absent")

ORDERS = [("forward", 0), ("reverse", 0), ("random", 1), ("random", 2)]


def _ints(rng, shape, dtype=np.float32):
    x = rng.integers(-4, 5, size=shape).astype(np.float64)
    x[x == 0] = 1  # no zeros: an element never read would go unnoticed
    return x.astype(dtype)


def _planted_case(mod, bug, broken, seed):
    """Runs planted family `bug`; returns (result, expected, guard_ok)."""
    rng = np.random.default_rng(seed)
    guard = 8
    if bug == "off_by_one_store":
        n = 300  # not a multiple of the 128-thread block, so y[n] belongs to a live thread
        x = _ints(rng, (n + guard,))
        dx = DeviceArray.from_host(x)
        dy = DeviceArray.from_host(np.full(n + guard, np.nan, np.float32))
        mod.planted_run(bug, broken, dx.ptr, 0, dy.ptr, n, 0, 0)
        got = dy.copy_to_host()
        return got[:n], np.maximum(x[:n], 0), bool(np.isnan(got[n:]).all())
    half = bug in ("missing_syncwarp", "mma_fragment_index")  # tensor-core kernels: fp16, whole tiles
    m, n, k = (32, 48, 32) if half else (37, 29, 45)
    dtype = np.float16 if half else np.float32
    a, b = _ints(rng, (m, k), dtype), _ints(rng, (k, n), dtype)
    da, db = DeviceArray.from_host(a), DeviceArray.from_host(b)
    dc = DeviceArray.from_host(np.full(m * n + guard, np.nan, np.float32))
    mod.planted_run(bug, broken, da.ptr, db.ptr, dc.ptr, m, n, k)
    got = dc.copy_to_host()
    expected = a.astype(np.float64) @ b.astype(np.float64)
    return got[:m * n].reshape(m, n), expected, bool(np.isnan(got[m * n:]).all())


def _planted_ok(mod, bug, broken, seed):
    """True when the run gave the exact result and left the guard cells alone; a launch error
    (the simulator's own report) counts as failing."""
    try:
        got, expected, guard_ok = _planted_case(mod, bug, broken, seed)
    except RuntimeError:
        return False
    return guard_ok and np.array_equal(got, expected)


def _planted_bugs():
    try:
        from pykern import _cuda_sim
    except ImportError:
        return []
    return _cuda_sim.planted_bugs()


@pytest.mark.parametrize("bug", _planted_bugs())
@pytest.mark.parametrize("order,seed", ORDERS, ids=[f"{o}{s or ''}" for o, s in ORDERS])
def test_planted_correct_twin_passes(sim, bug, order, seed):
    sim.sim_configure(order=order, seed=seed)
    assert _planted_ok(sim, bug, False, seed_for("planted", bug)), f"{bug}: the correct kernel failed ({order})"


@pytest.mark.parametrize("bug", _planted_bugs())
def test_planted_bug_is_caught(sim, bug):
    """In the default (forward) order every planted bug fails; the other orders are reported
    in the assertion message for the record."""
    caught = {}
    for order, seed in ORDERS:
        sim.sim_configure(order=order, seed=seed)
        caught[f"{order}{seed or ''}"] = not _planted_ok(sim, bug, True, seed_for("planted", bug))
    assert caught["forward"], f"{bug}: the simulator did not catch the planted bug; caught by order: {caught}"


def test_missing_syncthreads_is_named_when_a_thread_exits_early(sim):
    c = DeviceArray.empty((1,), np.float32)
    with pytest.raises(RuntimeError, match=r"__syncthreads .* reached by 63 of 64 threads; the other 1 had exited"):
        sim.sim_probe("early_exit_barrier", c.ptr)


@pytest.mark.parametrize("probe,match", [
    ("threads_1025", r"cudaErrorInvalidConfiguration: .*exceeds 1024 threads"),
    ("grid_y_65536", r"cudaErrorInvalidConfiguration: .*grid \(1,65536,1\) exceeds"),
    ("smem_64k_no_optin", r"cudaErrorInvalidValue: .*above 48 KiB needs cudaFuncSetAttribute"),
    ("static_40k_dynamic_16k", r"shared memory over the limit: 40960 bytes static \+ 16384 dynamic"),
    ("write_past_end", r"cudaErrorIllegalAddress: .*wrote past the end of a 4-byte device allocation"),
    ("dynamic_smem_past_end", r"wrote past the end of its 64 bytes of dynamic shared memory"),
])
def test_launch_errors_are_reported(sim, probe, match):
    c = DeviceArray.empty((1,), np.float32)
    with pytest.raises(RuntimeError, match=match):
        sim.sim_probe(probe, c.ptr)


@pytest.mark.parametrize("probe", ["smem_64k_optin", "static_40k"])
def test_legal_shared_memory_sizes_run(sim, probe):
    c = DeviceArray.from_host(np.zeros(1, np.float32))
    sim.sim_probe(probe, c.ptr)
    assert c.copy_to_host()[0] == 1.0


def _cuda_variants(op):
    return [pytest.param(v, id=v.name) for v in pk.variants(op, "cuda")]


@pytest.mark.parametrize("order,seed", ORDERS[1:], ids=[f"{o}{s or ''}" for o, s in ORDERS[1:]])
@pytest.mark.parametrize("variant", _cuda_variants("matmul"))
def test_matmul_under_other_thread_orders(sim, variant, order, seed):
    """A barrier a kernel relies on but lacks can pass in one order and fail in another."""
    sim.sim_configure(order=order, seed=seed)
    dtype = variant.dtypes[0]
    if dtype == "bfloat16":
        dtype = pytest.importorskip("ml_dtypes", reason="ml_dtypes needed for bfloat16").bfloat16
    rng = np.random.default_rng(seed_for("orders", variant.key, order, seed))
    a, b = _ints(rng, (70, 45), dtype), _ints(rng, (45, 133), dtype)
    c = pk.matmul(a, b, backend="cuda", variant=variant.name)
    np.testing.assert_array_equal(c.astype(np.float64), a.astype(np.float64) @ b.astype(np.float64))


@pytest.mark.parametrize("order,seed", ORDERS[1:], ids=[f"{o}{s or ''}" for o, s in ORDERS[1:]])
@pytest.mark.parametrize("variant", _cuda_variants("conv2d"))
def test_conv2d_under_other_thread_orders(sim, variant, order, seed):
    sim.sim_configure(order=order, seed=seed)
    # Each row in its first dtype (float16 for the tensor-core rung: every sum here, |y| <= 436,
    # is exact in fp32 and in fp16's 11 bits, so any thread order must give the reference exactly).
    dtype = variant.dtypes[0]
    if dtype == "bfloat16":
        dtype = pytest.importorskip("ml_dtypes", reason="ml_dtypes needed for bfloat16").bfloat16
    rng = np.random.default_rng(seed_for("orders", variant.key, order, seed))
    x, w = _ints(rng, (2, 6, 9, 10), dtype), _ints(rng, (8, 3, 3, 3), dtype)
    bias = _ints(rng, (8,), dtype)
    y = pk.conv2d(x, w, bias, padding=1, groups=2, activation="relu", backend="cuda", variant=variant.name)
    ref = pk.conv2d(x.astype(np.float64), w.astype(np.float64), bias.astype(np.float64), padding=1, groups=2,
                    activation="relu", backend="numpy", variant="reference")
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y, ref.astype(dtype))


def test_sm75_device_refuses_cp_async_variants_and_falls_back(sim):
    """The launchers' compute-capability checks, on a simulated sm_75 device."""
    sim.sim_configure(compute_capability=(7, 5))
    rng = np.random.default_rng(seed_for("sm75"))
    a, b = _ints(rng, (20, 30)), _ints(rng, (30, 40))
    with pytest.raises(RuntimeError, match="needs compute capability 8.0"):
        pk.matmul(a, b, backend="cuda", variant="double_buffer")
    x, w = _ints(rng, (1, 3, 8, 8)), _ints(rng, (4, 3, 3, 3))
    # im2col_gemm's GEMM (matmul_f32_best) takes warptile below sm_80 instead of double_buffer.
    y = pk.conv2d(x, w, backend="cuda", variant="im2col_gemm")
    ref = pk.conv2d(x.astype(np.float64), w.astype(np.float64), backend="numpy", variant="reference")
    np.testing.assert_array_equal(y, ref.astype(np.float32))


@pytest.mark.parametrize("cc", [(8, 0), (8, 9), (10, 0), (12, 0)])
def test_wgmma_rung_refuses_devices_that_are_not_sm_90(sim, cc):
    """wgmma is built for sm_90a, which only compute capability 9.0 runs: every other device,
    newer ones included, is refused with the reason before any launch."""
    sim.sim_configure(compute_capability=cc)
    rng = np.random.default_rng(seed_for("wgmma-cc", *cc))
    a, b = _ints(rng, (20, 30)).astype(np.float16), _ints(rng, (30, 40)).astype(np.float16)
    with pytest.raises(RuntimeError, match=rf"needs compute capability 9.0 .*this one is {cc[0]}.{cc[1]}"):
        pk.matmul(a, b, backend="cuda", variant="wgmma")


def test_launchers_see_the_device_as_configured_now(sim):
    """device_info() caches per device on a GPU, but the simulated device changes between
    launches: relu's grid (8 blocks per SM) follows the SM count set last."""
    rng = np.random.default_rng(seed_for("sm_count"))
    x = DeviceArray.from_host(rng.standard_normal(256 * 40).astype(np.float32))
    for sms in (1, 3, 2):
        sim.sim_configure(sm_count=sms)
        sim.sim_reset_stats()
        sim.relu_grid_stride((x.ptr,), x.ptr, (x.size,), "float32", 0)
        assert sim.sim_stats()["blocks"] == 8 * sms


@pytest.mark.parametrize("sms,blocks", [(1, 2), (2, 2), (3, 4), (8, 8), (9, 16)])
def test_implicit_gemm_picks_the_largest_tile_that_fills_every_sm(sim, sms, blocks):
    """y: (1, 128, 16, 16), so M = 256 output pixels and Kg = 128: the 128x128 tile makes 2
    blocks, 128x64 4, 64x64 8, 64x32 16; the launcher takes the first with >= sms blocks."""
    rng = np.random.default_rng(seed_for("igemm-pick", sms))
    x = DeviceArray.from_host(_ints(rng, (1, 4, 16, 16)))
    w = DeviceArray.from_host(_ints(rng, (128, 4, 1, 1)))
    y = DeviceArray.empty((1, 128, 16, 16), np.float32)
    sim.sim_configure(sm_count=sms)
    sim.sim_reset_stats()
    sim.conv2d_implicit_gemm((x.ptr, w.ptr, 0), y.ptr, (1, 4, 16, 16, 128, 1, 1, 16, 16, 1, 1, 0, 0, 1, 1, 1, 0),
                             "float32", 0)
    assert sim.sim_stats()["blocks"] == blocks


def test_backend_reason_says_timings_are_not_real():
    reason = pk.backends()["cuda"].reason
    assert "simulator" in reason and "timings are not" in reason


def test_without_the_simulator_the_cuda_backend_says_why():
    """PYKERN_CUDA_SIM=0 on a machine without a CUDA driver: the real extension reports why it
    cannot run, and a cuda call is refused with that reason (what the suite checked before the
    simulator made the backend available here)."""
    import ctypes.util
    import os
    import subprocess
    import sys
    import tempfile
    if ctypes.util.find_library("cuda") is not None:
        pytest.skip("a CUDA driver is present: the real extension may well be available")
    code = ("import numpy as np, pykern as pk\n"
            "a = pk.backends()['cuda']\n"
            "assert not a.available and a.reason, a\n"
            "try:\n"
            "    pk.relu(np.ones(4, np.float32), backend='cuda')\n"
            "except RuntimeError as e:\n"
            "    assert \"backend 'cuda' is not available: \" in str(e), e\n"
            "else:\n"
            "    raise SystemExit('no error')\n")
    env = {**os.environ, "PYKERN_CUDA_SIM": "0"}
    # Outside the repository, so the installed pykern is imported, not the sources.
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          cwd=tempfile.gettempdir())
    assert proc.returncode == 0, proc.stdout + proc.stderr

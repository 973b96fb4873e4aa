"""pykern.dask: the ops on dask arrays equal the single-process call for any chunking, and a
cluster of processes (a worker killed, a memory limit below the input) changes nothing.

Every result is checked against the float64 reference with pykern's one tolerance rule
(pykern/_check.py), as the single-process call is; integer-valued inputs check the indexing
exactly. The equality tests run on dask's synchronous scheduler (fast, and pk's spies see the
calls); the cluster tests share one LocalCluster of two processes.
"""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="dask is not installed: pip install \".[dask]\"")
import dask  # noqa: E402

import pykern as pk  # noqa: E402
import pykern.dask as pkd  # noqa: E402
from pykern._arrays import describe  # noqa: E402
from pykern._check import compare, tolerance_key  # noqa: E402
from pykern.dask.ops import _tree_sum  # noqa: E402
from pykern.dask.tiles import axis_tiles, direct_padding  # noqa: E402
from pykern.ops import SPECS  # noqa: E402

from conftest import require_backend, seed_for  # noqa: E402


@pytest.fixture(autouse=True)
def _sync_scheduler():
    with dask.config.set(scheduler="sync"):
        yield


def check(op, got, arrays, params):
    """got within pykern's tolerance of the float64 reference, and the single-process pk call too."""
    spec = SPECS[op]
    a64 = {k: None if v is None else v.astype(np.float64) for k, v in arrays.items()}
    _, _, p = spec.validate({k: describe(v, k, None) if v is not None else None for k, v in arrays.items()}, params)
    ref, mag = spec.reference(a64, p), spec.magnitude(a64, p)
    dtype = next(v.dtype for v in arrays.values() if v is not None)
    cmp = compare(got, ref, mag, tolerance_key(dtype, got.dtype))
    assert cmp.ok, cmp.message()
    return ref


# --- conv2d's tiles, on their own ------------------------------------------------------------

def test_tiles_cover_the_output_once_and_read_exactly_their_window():
    rng = np.random.default_rng(seed_for("tiles"))
    for _ in range(400):
        size, taps, stride, dil = (int(v) for v in rng.integers(1, 14, 4) // [1, 2, 3, 3] + [0, 1, 1, 1])
        pad = int(rng.integers(0, 6))
        out = (size + 2 * pad - dil * (taps - 1) - 1) // stride + 1
        if out < 1:
            continue
        cuts = np.sort(rng.choice(np.arange(1, size), size=min(size - 1, int(rng.integers(0, 6))), replace=False)) \
            if size > 1 else []
        chunks = tuple(np.diff([0, *cuts, size]).tolist())
        tiles = axis_tiles(chunks, out, taps, stride, pad, dil)
        assert [t.out[0] for t in tiles] == [0] + [t.out[1] for t in tiles[:-1]] and tiles[-1].out[1] == out
        starts = np.cumsum((0,) + chunks)
        for t in tiles:
            o0, o1 = t.out
            assert o0 < o1
            assert t.need == (o0 * stride - pad, (o1 - 1) * stride + dil * (taps - 1) + 1 - pad)
            rows = [starts[j] + a + i for j, a, b, _ in t.sources for i in range(b - a)]
            assert rows == list(range(max(t.need[0], 0), min(t.need[1], size)))  # each needed row once
            for j, a, b, off in t.sources:
                assert off == starts[j] + a - t.need[0]
            top = direct_padding(t, chunks, taps, stride, dil)
            if top is not None:  # the kernel on the whole chunk padded by top gives this tile
                (j, _, _, _), = t.sources
                assert (chunks[j] + 2 * top - dil * (taps - 1) - 1) // stride + 1 == o1 - o0
                assert starts[j] - top == t.need[0]


def test_a_chunk_in_which_no_window_starts_gives_no_tile():
    # stride 2, chunks of one row: rows 1, 3, 5 start no window, so their chunks are only halo
    tiles = axis_tiles((1,) * 7, 3, 3, 2, 0, 1)
    assert [t.out for t in tiles] == [(0, 1), (1, 2), (2, 3)]
    assert [len(t.sources) for t in tiles] == [3, 3, 3]


# --- conv2d on hostile chunkings -------------------------------------------------------------

# (C, H, W, K, R, S, params): stride, dilation, padding, groups, 1x1, filters wider than a chunk,
# padding wider than the filter (tiles of padding only), a stride past the input
CONV_CASES = [
    (4, 11, 10, 6, 3, 3, dict(padding=1)),
    (4, 11, 10, 5, 3, 3, dict(stride=2, padding=1)),
    (3, 13, 12, 4, 3, 2, dict(stride=(3, 2), dilation=2, padding=(2, 1))),
    (4, 9, 10, 6, 3, 3, dict(groups=2, padding=(1, 0), bias=True, activation="relu")),
    (4, 9, 8, 3, 1, 1, dict(stride=2)),
    (2, 12, 11, 3, 5, 5, dict(padding=2, bias=True)),
    (2, 7, 6, 3, 3, 3, dict(padding=4, dilation=(1, 2))),
    (3, 10, 5, 4, 1, 1, dict(stride=(5, 1), bias=True)),
]


def chunkings(n, h, w):
    """Hostile ways to split (N, C, H, W): one element, uneven, halo-sized (2 rows: a 3x3
    filter's halo), odd sizes that split stride periods, batch only."""
    def uneven(size):
        cuts = sorted({1, size // 2, size - 1} - {0, size})
        return tuple(np.diff([0, *cuts, size]).tolist())
    return {"one-element": (1, -1, 1, 1), "uneven": (uneven(n), -1, uneven(h), uneven(w)),
            "halo-sized": (1, -1, 2, 2), "stride-splitting": (2, -1, 3, 3), "batch-only": (1, -1, -1, -1)}


@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_conv2d_equals_the_unchunked_call_for_any_chunking(case):
    c, h, w, k, r, s, params = CONV_CASES[case]
    params = dict(params)
    rng = np.random.default_rng(seed_for("conv2d", case))
    g = params.get("groups", 1)
    x = rng.standard_normal((3, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, c // g, r, s)).astype(np.float32)
    bias = rng.standard_normal(k).astype(np.float32) if params.pop("bias", False) else None
    single = pk.conv2d(x, wt, bias, **params)
    for label, chunks in chunkings(*x.shape[:1], h, w).items():
        y = pkd.conv2d(da.from_array(x, chunks=chunks), wt, bias, **params)
        assert y.shape == single.shape and y.dtype == single.dtype
        got = y.compute()
        assert isinstance(got, np.ndarray)
        check("conv2d", got, {"x": x, "w": wt, "bias": bias}, params)
        assert np.allclose(got, single, rtol=1e-5, atol=1e-5), label


def test_conv2d_is_exact_on_integer_valued_inputs():
    # small integers in float64: every sum is exact, so any indexing slip shows as a difference
    rng = np.random.default_rng(seed_for("conv2d-exact"))
    x = rng.integers(-4, 5, (2, 4, 13, 11)).astype(np.float64)
    wt = rng.integers(-3, 4, (6, 2, 3, 3)).astype(np.float64)
    bias = rng.integers(-5, 6, 6).astype(np.float64)
    kw = dict(stride=2, padding=(2, 1), dilation=(1, 2), groups=2)
    want = pk.conv2d(x, wt, bias, **kw)
    for chunks in chunkings(2, 13, 11).values():
        got = pkd.conv2d(da.from_array(x, chunks=chunks), da.from_array(wt, chunks=2), bias, **kw).compute()
        np.testing.assert_array_equal(got, want)


def test_conv2d_tasks_read_only_their_tile(monkeypatch):
    # each pk.conv2d call gets its tile's input: the tile's rows plus the halo, never the image
    calls = []
    real = pk.conv2d
    monkeypatch.setattr(pk, "conv2d", lambda x, *a, **kw: calls.append(x.shape) or real(x, *a, **kw))
    x = np.random.default_rng(1).standard_normal((2, 3, 40, 40)).astype(np.float32)
    wt = np.random.default_rng(2).standard_normal((4, 3, 3, 3)).astype(np.float32)
    y = pkd.conv2d(da.from_array(x, chunks=(1, 3, 10, 10)), wt, padding=1)
    assert not calls  # lazy: nothing ran yet
    y.compute()
    # tiles of 11, 10, 10 and 9 output rows (the first also takes the row its padding shifts in),
    # each reading 2 more input rows than it writes (a 3x3 filter): 13 rows at most, of 40
    assert len(calls) == 2 * 4 * 4 and max(s[2] for s in calls) == 13 and max(s[3] for s in calls) == 13


# --- the gradients, relu, matmul --------------------------------------------------------------

@pytest.mark.parametrize("params", [dict(padding=1), dict(stride=2, padding=1, dilation=2, groups=2)])
def test_conv2d_gradients_chunked_over_the_batch(params):
    rng = np.random.default_rng(seed_for("grads", params))
    x = rng.standard_normal((7, 4, 9, 8)).astype(np.float32)
    wt = rng.standard_normal((6, 4 // params.get("groups", 1), 3, 3)).astype(np.float32)
    dy = rng.standard_normal(pk.conv2d(x, wt, **params).shape).astype(np.float32)
    for nchunks in ((1,) * 7, (3, 1, 3), (7,), (2, 5)):
        xd, dyd = da.from_array(x, chunks=(nchunks, -1, -1, -1)), da.from_array(dy, chunks=(nchunks, -1, -1, -1))
        dx = pkd.conv2d_backward_input(dyd, wt, x.shape, **params)
        assert dx.chunks[0] == nchunks
        check("conv2d_backward_input", dx.compute(), {"dy": dy, "w": wt}, {"x_shape": x.shape, **params})
        dw = pkd.conv2d_backward_weight(xd, dyd, wt.shape, **params)
        assert dw.npartitions == 1
        check("conv2d_backward_weight", dw.compute(), {"x": x, "dy": dy}, {"w_shape": wt.shape, **params})


def test_relu_and_its_gradient_blockwise_bit_for_bit():
    rng = np.random.default_rng(seed_for("relu"))
    x = rng.standard_normal((9, 13, 5)).astype(np.float32)
    x[0, 0, :3] = [np.nan, -0.0, np.inf]
    dy = rng.standard_normal(x.shape).astype(np.float32)
    y = pkd.relu(da.from_array(x, chunks=(2, 5, 1)))
    np.testing.assert_array_equal(y.compute(), pk.relu(x))
    dx = pkd.relu_backward(da.from_array(dy, chunks=(4, 3, 5)), da.from_array(x, chunks=(1, 13, 2)))
    np.testing.assert_array_equal(dx.compute(), pk.relu_backward(dy, x))


# uneven blocks; one-element K (29 partial products a block); one-element M and N; one block
MATMUL_CHUNKS = [((5, 7), (7, 4)), ((37, 1), (1, 23)), ((1, 29), (29, 1)), ((37, (3, 20, 6)), ((3, 20, 6), 23)),
                 ((-1, -1), (-1, -1))]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matmul_blocked_over_m_n_and_k(dtype):
    rng = np.random.default_rng(seed_for("matmul", dtype))
    a, b = rng.standard_normal((37, 29)).astype(dtype), rng.standard_normal((29, 23)).astype(dtype)
    for ca, cb in MATMUL_CHUNKS:
        c = pkd.matmul(da.from_array(a, chunks=ca), da.from_array(b, chunks=cb))
        check("matmul", c.compute(), {"a": a, "b": b}, {})
    # transposed operands, read in place by every block
    c = pkd.matmul(da.from_array(np.ascontiguousarray(a.T), chunks=(4, 6)),
                   da.from_array(np.ascontiguousarray(b.T), chunks=(5, 4)), transpose_a=True, transpose_b=True)
    check("matmul", c.compute(), {"a": a, "b": b}, {})


def test_sums_over_chunks_are_added_in_a_fixed_order():
    dsk = {}
    _tree_sum(dsk, [("p", i) for i in range(5)], ("out", 0), "t")
    assert dsk[("out", 0)][1:] == (("t", 0, 1, 0), ("p", 4))
    assert dsk[("t", 0, 1, 0)][1:] == (("t", 0, 0, 0), ("t", 0, 0, 1))
    assert dsk[("t", 0, 0, 0)][1:] == (("p", 0), ("p", 1))
    # and the bits do not depend on the scheduler's order: threads, many times
    rng = np.random.default_rng(seed_for("determinism"))
    a = da.from_array(rng.standard_normal((64, 512)).astype(np.float32), chunks=(32, 16))
    b = da.from_array(rng.standard_normal((512, 16)).astype(np.float32), chunks=(16, 16))
    runs = [pkd.matmul(a, b).compute(scheduler="threads", num_workers=4) for _ in range(4)]
    assert all(np.array_equal(runs[0], r) for r in runs[1:])


def test_backend_and_variant_pass_through_to_every_chunk(monkeypatch):
    seen = []
    real = pk.conv2d
    monkeypatch.setattr(pk, "conv2d", lambda *a, **kw: seen.append((kw["backend"], kw["variant"])) or real(*a, **kw))
    x = np.random.default_rng(3).standard_normal((2, 2, 6, 6)).astype(np.float32)
    wt = np.random.default_rng(4).standard_normal((2, 2, 3, 3)).astype(np.float32)
    got = pkd.conv2d(da.from_array(x, chunks=(1, 2, 3, 3)), wt, padding=1, backend="numpy",
                     variant="winograd_2x2").compute()
    assert seen and set(seen) == {("numpy", "winograd_2x2")}
    check("conv2d", got, {"x": x, "w": wt, "bias": None}, {"padding": 1})


def test_the_cuda_backend_runs_each_chunk_through_the_same_dispatch():
    require_backend("cuda")  # a GPU, or pykern's CUDA C++ simulator (tests/conftest.py)
    x = np.random.default_rng(5).standard_normal((1, 2, 6, 5)).astype(np.float32)
    wt = np.random.default_rng(6).standard_normal((2, 2, 3, 3)).astype(np.float32)
    got = pkd.conv2d(da.from_array(x, chunks=(1, 2, 4, 3)), wt, padding=1, backend="cuda",
                     variant="implicit_gemm").compute()
    check("conv2d", got, {"x": x, "w": wt, "bias": None}, {"padding": 1})


# --- errors ----------------------------------------------------------------------------------

def test_chunkings_that_cannot_work_are_refused_with_the_fix():
    x = da.zeros((2, 4, 8, 8), chunks=(1, 2, 8, 8), dtype=np.float32)
    wt = np.ones((3, 4, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"channel axis C into \(2, 2\).*x\.rechunk\(\{1: -1\}\)"):
        pkd.conv2d(x, wt)
    a = da.zeros((6, 10), chunks=(3, 5), dtype=np.float32)
    b = da.zeros((10, 4), chunks=(4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=r"split K differently.*\(5, 5\).*\(4, 4, 2\).*b\.rechunk"):
        pkd.matmul(a, b)
    dy = da.zeros((2, 3, 6, 6), chunks=(1, 3, 3, 6), dtype=np.float32)
    with pytest.raises(ValueError, match=r"the height P into \(3, 3\).*batch only.*dy\.rechunk\(\{2: -1\}\)"):
        pkd.conv2d_backward_input(dy, wt, (2, 4, 8, 8))
    xs = da.zeros((2, 4, 8, 8), chunks=(2, 4, 8, 8), dtype=np.float32)
    with pytest.raises(ValueError, match=r"split the batch differently"):
        pkd.conv2d_backward_weight(xs, dy.rechunk((1, 3, 6, 6)), wt.shape)


def test_bad_arguments_get_pk_own_messages_before_anything_runs():
    x = np.zeros((2, 4, 8, 8), np.float32)
    bad_w = np.ones((3, 5, 3, 3), np.float32)
    with pytest.raises(ValueError) as single:
        pk.conv2d(x, bad_w)
    with pytest.raises(ValueError) as chunked:
        pkd.conv2d(da.from_array(x, chunks=1), bad_w)
    assert str(chunked.value) == str(single.value)
    with pytest.raises(ValueError, match="unknown backend"):
        pkd.relu(da.from_array(x), backend="tpu")
    with pytest.raises(ValueError, match="no_such"):
        pkd.relu(da.from_array(x), backend="numpy", variant="no_such")
    with pytest.raises(TypeError, match=r"takes a dask array.*from_array"):
        pkd.conv2d(x, bad_w)


def test_pykern_never_imports_dask_and_pykern_dask_names_the_extra():
    code = ("import sys, numpy as np, pykern as pk; pk.conv2d(np.ones((1, 1, 3, 3), np.float32), "
            "np.ones((1, 1, 2, 2), np.float32)); assert 'dask' not in sys.modules, 'pykern imported dask'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr
    code = "import sys; sys.modules['dask'] = None\ntry:\n import pykern.dask\nexcept ImportError as e: print(e)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert 'pip install "pykern[dask]"' in proc.stdout, proc.stdout + proc.stderr


# --- on a cluster of processes ---------------------------------------------------------------

WORKER_MEMORY = 200 * 2**20  # bytes per worker in the memory test; its input is larger than this


def local_cluster(**kw):
    distributed = pytest.importorskip("distributed", reason="distributed is not installed: pip install \".[dask]\"")
    return distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0", **kw)


@pytest.fixture(scope="module")
def client():
    import distributed
    with local_cluster() as cluster, distributed.Client(cluster) as c:
        yield c


def test_a_worker_killed_mid_computation_changes_nothing(client):
    rng = np.random.default_rng(seed_for("killed"))
    x = rng.standard_normal((12, 3, 16, 16)).astype(np.float32)
    wt = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    # each chunk passes a slow task on its way in, so that the kill lands while tasks run
    slow = da.from_array(x, chunks=(1, 3, 8, 16)).map_blocks(lambda b: (time.sleep(0.15), b)[1], dtype=np.float32)
    future = client.compute(pkd.conv2d(slow, wt, padding=1))
    pids = client.run(os.getpid)
    victim = next(iter(pids))
    deadline = time.monotonic() + 20
    while not client.processing().get(victim) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.processing().get(victim), "no task ever ran on the worker to kill"
    os.kill(pids[victim], signal.SIGKILL)
    got = future.result(timeout=60)
    check("conv2d", got, {"x": x, "w": wt, "bias": None}, {"padding": 1})
    assert future.status == "finished"
    client.wait_for_workers(2, timeout=30)
    assert set(client.run(os.getpid).values()) != set(pids.values())  # the nanny started a new worker


# --- pykern bench --scheduler ----------------------------------------------------------------

def test_bench_over_a_cluster_times_each_device_once(client, tmp_path, capsys):
    from pykern.cli import main
    path = tmp_path / "cluster.json"
    address = client.scheduler.address
    rc = main(["bench", "--scheduler", address, "--op", "relu", "--sizes", "2^10", "--quick", "--no-progress",
               "--json", str(path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    import json
    doc = json.loads(path.read_text())
    assert doc["scheduler"] == address and len(doc["workers"]) == 2
    # both workers run on this machine's CPU: it is timed once, and the other worker says why not
    (dev,), (skip,) = doc["devices"], doc["skipped_workers"]
    assert dev["devices"] == [f"CPU {dev['cpu']}"] and dev["backends"] == ["numpy"]
    assert skip["worker"] != dev["worker"] and dev["worker"] in skip["reason"]
    ran = [r for r in dev["doc"]["entries"] if r["kind"] == "variant"]
    assert ran and {r["backend"] for r in ran} == {"numpy"} and all(r["status"] == "ok" for r in ran)
    (res,) = doc["comparison"]
    assert (res["op"], res["case_id"]) == ("relu", "1024") and res["rows"][0]["x_cpu"] == 1.0
    assert "x CPU" in out and "1.00x" in out and f"not timed, its devices are timed on {dev['worker']}" in out
    assert main(["bench", "--scheduler", address, "--op", "relu", "--plot", str(tmp_path / "p.png")]) == 2


def test_each_cpu_model_and_gpu_name_is_timed_on_one_worker_only():
    from pykern.dask.bench import plan_devices
    ids = {"tcp://a:1": {"cpu": "X", "gpu": "A100"}, "tcp://a:2": {"cpu": "X", "gpu": "A100"},
           "tcp://b:1": {"cpu": "X", "gpu": "H100"}, "tcp://c:1": {"cpu": "Y", "gpu": None}}
    runs, skipped = plan_devices(ids)
    assert [(r["worker"], r["devices"], r["backends"]) for r in runs] == [
        ("tcp://a:1", ["CPU X", "GPU A100"], ["numpy", "cuda", "numba"]),
        ("tcp://b:1", ["GPU H100"], ["cuda", "numba"]), ("tcp://c:1", ["CPU Y"], ["numpy"])]
    assert skipped == [{"worker": "tcp://a:2", "reason": "its devices are timed on tcp://a:1"}]
    runs, skipped = plan_devices(ids, "numpy")
    assert [r["worker"] for r in runs] == ["tcp://a:1", "tcp://c:1"] and len(skipped) == 2


def test_the_device_table_puts_the_cpu_row_at_1x():
    # the table's arithmetic on a hand-made document (two devices, one op and size)
    from pykern.dask.bench import cluster_table, comparison

    def entry(device, key, t):
        return {"op": "matmul", "case_id": "64x64x64", "dtype": "float32", "device": device, "kind": "variant",
                "status": "ok", "key": key, "median_s": t, "iqr_rel": 0.01, "rate": 1.0, "unit": "GFLOP/s"}
    gpu_doc = {"entries": [entry("gpu", "cuda/naive", 2e-4), entry("gpu", "cuda/warptile", 5e-5),
                           entry("cpu", "numpy/blas", 9.0)], "elapsed_s": 1.0}
    cpu_doc = {"entries": [entry("cpu", "numpy/blas", 1e-3), entry("cpu", "numpy/reference", 2e-3)], "elapsed_s": 1.0}
    doc = {"scheduler": "tcp://s:8786", "workers": {"w1": {}, "w2": {}}, "skipped_workers": [],
           "devices": [{"worker": "w1", "host": "h1", "devices": ["GPU H100"], "backends": ["cuda"], "doc": gpu_doc},
                       {"worker": "w2", "host": "h2", "devices": ["CPU X"], "backends": ["numpy"], "doc": cpu_doc}]}
    doc["comparison"] = comparison(doc)
    (res,) = doc["comparison"]
    assert [(r["device"], r["key"], r["x_cpu"]) for r in res["rows"]] == [
        ("CPU X", "numpy/blas", 1.0), ("GPU H100", "cuda/warptile", 20.0)]  # w1's CPU entry is not w1's device
    assert "20.00x" in cluster_table(doc)


def test_on_two_processes_a_spatial_conv2d_larger_than_a_worker_memory():
    # A cluster of its own: after this a worker may stay paused near its limit (glibc keeps the
    # memory it freed), and a paused worker starts no task. The input (256 MiB) is generated
    # chunk by chunk on the workers and never gathered: with 200 MiB per worker, a task holding
    # the whole image would have its worker killed and restarted (the pids below would change)
    import distributed
    with local_cluster(memory_limit=WORKER_MEMORY) as cluster, distributed.Client(cluster) as client:
        spatial_conv2d_under_a_memory_limit(client)


def spatial_conv2d_under_a_memory_limit(client):
    pids = client.run(os.getpid)
    h = w = 8192
    x = da.random.default_rng(7).standard_normal((1, 1, h, w), chunks=(1, 1, 1024, 1024), dtype=np.float32)
    assert x.nbytes > WORKER_MEMORY
    wt = np.random.default_rng(8).standard_normal((2, 1, 3, 3)).astype(np.float32)
    bias = np.array([0.5, -0.25], np.float32)
    y = pkd.conv2d(x, wt, bias, padding=1, stride=(1, 2))
    r0, c0 = 3000, 1500  # a sampled region across chunk boundaries (rows 3072, columns 2048 of x)
    total, y_region, x_region = dask.compute(y.sum(dtype=np.float64), y[:, :, r0:r0 + 100, c0:c0 + 60],
                                             x[:, :, r0 - 1:r0 + 101, 2 * c0 - 1:2 * c0 + 120], scheduler=client)
    check("conv2d", y_region, {"x": x_region, "w": wt, "bias": bias}, {"stride": (1, 2)})
    assert np.isfinite(total)
    assert client.run(os.getpid) == pids, "a worker was restarted: it ran out of memory"


def test_cupy_chunks_on_a_local_cuda_cluster():
    # Written without a GPU (none here): skipped with the reason where cupy, dask-cuda or a GPU is
    # missing. One worker per GPU; the chunks are CuPy arrays made on the workers.
    from pykern.benchmark import gpu_present
    has_gpu, why = gpu_present()
    if not has_gpu:
        pytest.skip(f"no GPU: {why}")
    cupy = pytest.importorskip("cupy", reason="cupy is not installed: pip install \".[cupy]\"")
    dask_cuda = pytest.importorskip("dask_cuda", reason="dask-cuda is not installed: pip install dask-cuda")
    import distributed
    rng = np.random.default_rng(seed_for("cuda-cluster"))
    x = rng.standard_normal((4, 3, 20, 18)).astype(np.float32)
    wt = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    with dask_cuda.LocalCUDACluster(n_workers=1, dashboard_address=":0") as cluster, distributed.Client(cluster) as c:
        xg = da.from_array(x, chunks=(1, 3, 7, 6)).map_blocks(cupy.asarray)
        y = pkd.conv2d(xg, cupy.asarray(wt), padding=1, stride=2)
        got = y.map_blocks(cupy.asnumpy).compute(scheduler=c)
    check("conv2d", got, {"x": x, "w": wt, "bias": None}, {"padding": 1, "stride": 2})


def test_worker_environ_keeps_distributeds_settings_and_the_freed_heap():
    """glibc's thresholds for pykern's workers, on top of distributed's own (its BLAS thread
    limits stay): a trim threshold of 64 KiB would fault every workspace in again each call."""
    import pykern.dask as pkd
    env = pkd.worker_environ()
    default = dask.config.get("distributed.nanny.pre-spawn-environ")
    assert {k: v for k, v in env.items() if not k.startswith("MALLOC_")} == \
        {k: v for k, v in default.items() if not k.startswith("MALLOC_")}
    assert env["MALLOC_TRIM_THRESHOLD_"] == 64 << 20 and env["MALLOC_MMAP_THRESHOLD_"] == 32 << 20

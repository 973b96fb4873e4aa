"""pykern.dask on a LocalCluster: what a second worker buys, what a task costs, and a conv2d of an
image larger than a worker's memory (issue 22).

    python bench/bench_dask.py [--runs 7] [--json bench/results/cpu/dask_conv2d.json]
                               [--plot bench/results/cpu/dask_speedup.png] [--quick]
                               [--batch 64/4,64/8,64/16,64/32,512/8,512/32] [--no-spatial]

1. Batch-chunked conv2d, a ResNet layer (N=64, 3x3, 64->64, 28x28, padding 1, float32) in
   chunks of 4, 8, 16 and 32 images, and N=512 in chunks of 8 and 32 (--batch: what a second
   worker buys depends on how long a task computes against what it costs to schedule, and on
   how the whole compute compares with one round trip to the scheduler, which does not split:
   the script reports that round trip, one no-op task persisted and waited for, and the
   speed-up it leaves at best), on LocalCluster(n_workers=1) and
   (n_workers=2), 1 thread each (distributed holds each worker's BLAS, and pykern's own threads,
   to one thread). x is persisted on the workers first, as a pipeline
   would have it; each run persists y and waits for it (nothing is gathered). The two clusters
   take turns run by run, so that both see the same load from other processes; median of --runs
   runs each, with the IQR, and the load average before and after (2 shared cores: other
   processes take from the speed-up). The task overhead: the 1-worker run against the same chunks called
   in this process (BLAS held to one thread too), per task; and the time per task of 400 no-op
   relu tasks on one-element chunks.
2. Spatially chunked conv2d of a (1, 1, 16384, 16384) float32 image (1 GiB) with workers limited to
   256 MiB each: the input is generated chunk by chunk on the workers and never gathered; the sum
   of the output forces every tile; a sampled region across chunk boundaries is checked against
   the float64 reference under pykern's tolerance rule; the workers' peak RSS is sampled and
   their pids compared (a worker over its limit is killed and restarted).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time

import numpy as np



def quantiles(ts):
    q = statistics.quantiles(ts, n=4) if len(ts) > 1 else [ts[0]] * 3
    return {"median_s": statistics.median(ts), "q25_s": q[0], "q75_s": q[2], "runs_s": ts,
            "iqr_rel": (q[2] - q[0]) / statistics.median(ts)}


def cluster(n_workers, **kw):
    """Workers started with pykern.dask.worker_environ() (glibc keeps its freed heap) unless
    --malloc-default asks for distributed's own environment."""
    import dask
    from distributed import LocalCluster

    import pykern.dask as pkd
    environ = dask.config.get("distributed.nanny.pre-spawn-environ") if MALLOC_DEFAULT else pkd.worker_environ()
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                            **kw)


MALLOC_DEFAULT = False  # set by --malloc-default


def batch_part(args):
    import contextlib

    import dask.array as da
    from distributed import Client, wait
    from threadpoolctl import threadpool_limits

    import pykern as pk
    import pykern.dask as pkd
    c, k, hw = 64, 64, 28
    batches = [(min(n, 16), min(ch, 8)) for n, ch in args.batch[:2]] if args.quick else args.batch
    rng = np.random.default_rng(0)
    x_all = rng.standard_normal((max(n for n, _ in batches), c, hw, hw)).astype(np.float32)
    w = (rng.standard_normal((k, c, 3, 3)) / 24).astype(np.float32)
    out = {"layer": {"C": c, "K": k, "H": hw, "W": hw, "R": 3, "S": 3, "padding": 1, "dtype": "float32"},
           "op": "conv2d", "backend": "numpy",
           "variant": next(v.name for v in pk.variants("conv2d", "numpy") if v.default), "by_chunk": {}}
    with contextlib.ExitStack() as stack:
        clients = {}
        for workers in (1, 2):
            clients[workers] = stack.enter_context(Client(stack.enter_context(cluster(workers))))
        load0 = os.getloadavg()[0]
        # what one compute costs with nothing to compute: persist and wait for one no-op task
        rt = {}
        for workers in (1, 2):
            one = clients[workers].persist(da.from_array(np.ones(1, np.float32), chunks=1))
            wait(one)
            tt = []
            for run in range(max(args.runs, 5) + 1):
                y = pkd.relu(one, variant=None if run % 2 else "maximum") * (run + 2)  # fresh keys each run
                t = time.perf_counter()
                wait(clients[workers].persist(y))
                tt.append(time.perf_counter() - t)
            rt[str(workers)] = statistics.median(tt[1:])
        out["round_trip_s"] = rt
        print(f"one compute of one no-op task (persist + wait): {rt['1'] * 1e3:.1f} ms on 1 worker, "
              f"{rt['2'] * 1e3:.1f} ms on 2", flush=True)
        for n, chunk in batches:
            x = x_all[:n]
            flops = 2.0 * n * k * hw * hw * c * 9
            tasks = -(-n // chunk)
            # in this process, chunk by chunk, pykern and BLAS held to one thread: the work without dask
            with threadpool_limits(1):
                ts = []
                for _ in range(args.runs):
                    t = time.perf_counter()
                    for i in range(0, n, chunk):
                        pk.conv2d(x[i:i + chunk], w, padding=1)
                    ts.append(time.perf_counter() - t)
            rec_chunk = {"N": n, "batch_chunk": chunk, "tasks": tasks, "in_process": quantiles(ts), "workers": {}}
            xd = {}
            for workers in (1, 2):
                xd[workers] = clients[workers].persist(da.from_array(x, chunks=(chunk, -1, -1, -1)))
                wait(xd[workers])

            def fresh(workers, run, xd=xd, n=n, chunk=chunk):  # a new filter key each run: new output keys, never results still held
                return pkd.conv2d(xd[workers], da.from_array(w, chunks=w.shape, name=f"w-{n}-{chunk}-{workers}-{run}"),
                                  padding=1)

            def timed(workers, run):
                client, y = clients[workers], fresh(workers, run)
                t = time.perf_counter()
                wait(client.persist(y))
                return time.perf_counter() - t
            for workers in (1, 2):
                timed(workers, -1)  # warm-up: imports, first calls
            # the two clusters take turns, run by run: on a shared machine both see the same load
            l0, ts = os.getloadavg()[0], {1: [], 2: []}
            for run in range(args.runs):
                for workers in (1, 2):
                    ts[workers].append(timed(workers, run))
            l1 = os.getloadavg()[0]
            for workers in (1, 2):
                client = clients[workers]
                env = client.run(lambda: {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
                got = client.compute(fresh(workers, "check")[:2]).result()
                ok = bool(np.allclose(got, pk.conv2d(x[:2], w, padding=1), rtol=1e-5, atol=1e-5))
                rec = quantiles(ts[workers]) | {"loadavg_1min_before": l0, "loadavg_1min_after": l1,
                                                "worker_env": sorted(set(map(str, env.values()))), "checked": ok,
                                                "gflops": flops / statistics.median(ts[workers]) / 1e9}
                if workers == 1:  # per task: the one-worker run beyond the same calls in this process
                    rec["overhead_per_task_s"] = (rec["median_s"] - rec_chunk["in_process"]["median_s"]) / tasks
                rec_chunk["workers"][str(workers)] = rec
                print(f"conv2d N{n} in batch chunks of {chunk} ({tasks} tasks), {workers} worker(s) x 1 thread: median "
                      f"{rec['median_s'] * 1e3:.1f} ms (IQR {100 * rec['iqr_rel']:.0f}%), {rec['gflops']:.1f} GFLOP/s, "
                      f"load {l0:.1f} -> {l1:.1f}, checked {ok}", flush=True)
            for workers in (1, 2):
                clients[workers].cancel(xd[workers])
            one, two = rec_chunk["workers"]["1"], rec_chunk["workers"]["2"]
            rec_chunk["speedup_2_workers"] = one["median_s"] / two["median_s"]
            # Amdahl: the round trip does not split, the in-process work halves at best (with the
            # smaller of the two clusters' round trips: the most a second worker could give)
            work, trip = rec_chunk["in_process"]["median_s"], min(rt.values())
            rec_chunk["bound_2_workers"] = (trip + work) / (trip + work / 2)
            print(f"  N{n} in chunks of {chunk}: in this process {work * 1e3:.1f} ms; speed-up "
                  f"of 2 workers over 1: {rec_chunk['speedup_2_workers']:.2f}x (ideal 2x; with the round trip "
                  f"{rec_chunk['bound_2_workers']:.2f}x at best); per task overhead "
                  f"{one['overhead_per_task_s'] * 1e3:.2f} ms of {one['median_s'] / tasks * 1e3:.1f} ms", flush=True)
            out["by_chunk"][f"N{n}/{chunk}"] = rec_chunk
        client = clients[1]  # what a task costs with (almost) nothing to compute
        tiny = client.persist(da.from_array(np.arange(1.0, 401.0, dtype=np.float32), chunks=1))
        wait(tiny)
        tt = []
        for run in range(args.runs):
            noop = pkd.relu(tiny, variant=None if run % 2 else "maximum")  # fresh keys each run
            t = time.perf_counter()
            wait(client.persist(noop))
            tt.append(time.perf_counter() - t)
        out["noop_relu_task_s"] = statistics.median(tt) / 400
        out["loadavg_1min_before"], out["loadavg_1min_after"] = load0, os.getloadavg()[0]
    print(f"a no-op relu task: {out['noop_relu_task_s'] * 1e3:.2f} ms", flush=True)
    return out


def _peak_rss(client, stop, peaks):
    while not stop.is_set():
        try:
            for addr, rss in client.run(lambda: __import__("psutil").Process().memory_info().rss).items():
                peaks[addr] = max(peaks.get(addr, 0), rss)
        except Exception:  # a worker restarting: the pids say so afterwards
            pass
        stop.wait(0.25)


def spatial_part(args):
    import dask
    import dask.array as da
    from distributed import Client

    import pykern.dask as pkd
    from pykern._check import compare, tolerance_key
    from pykern.ops.conv2d import reference
    limit = 256 * 2**20
    # 1024x1024 chunks: a tile's task holds its input, its zero-padded copy, the output and the
    # im2col workspace (C*R*S = 9 rows per output pixel: 36 MiB here); 2048x2048 tiles (150 MiB)
    # pushed a 256 MiB worker over its limit, and the nanny restarted it
    side, chunk = (8192, 1024) if args.quick else (16384, 1024)
    with cluster(2, memory_limit=limit) as cl, Client(cl) as client:
        pids = client.run(os.getpid)
        x = da.random.default_rng(11).standard_normal((1, 1, side, side), chunks=(1, 1, chunk, chunk), dtype=np.float32)
        w = np.random.default_rng(12).standard_normal((2, 1, 3, 3)).astype(np.float32)
        bias = np.array([0.5, -0.25], np.float32)
        y = pkd.conv2d(x, w, bias, padding=1, stride=(1, 2))
        r0, c0 = chunk * 3 - 40, chunk // 2 * 3 - 30  # across a row and a column boundary of x's chunks
        stop, peaks = threading.Event(), {}
        sampler = threading.Thread(target=_peak_rss, args=(client, stop, peaks), daemon=True)
        sampler.start()
        t = time.perf_counter()
        total, y_reg, x_reg = dask.compute(y.sum(dtype=np.float64), y[:, :, r0:r0 + 80, c0:c0 + 60],
                                           x[:, :, r0 - 1:r0 + 81, 2 * c0 - 1:2 * c0 + 120])
        elapsed = time.perf_counter() - t
        stop.set()
        sampler.join()
        x64 = x_reg.astype(np.float64)
        params = dict(stride=(1, 2), padding=(0, 0), dilation=(1, 1))
        cmp = compare(y_reg, reference(x64, w.astype(np.float64), bias.astype(np.float64), **params),
                      reference(np.abs(x64), np.abs(w.astype(np.float64)), np.abs(bias.astype(np.float64)), **params),
                      tolerance_key(np.float32))
        out = {"op": "conv2d", "input_shape": [1, 1, side, side], "input_bytes": x.nbytes,
               "chunks": [1, 1, chunk, chunk],
               "output_shape": list(y.shape), "tiles": int(np.prod(y.numblocks)), "worker_memory_limit": limit,
               "input_over_limit": x.nbytes / limit, "elapsed_s": elapsed, "output_sum": float(total),
               "sampled_region": {"y_rows": [r0, r0 + 80], "y_cols": [c0, c0 + 60], "ok": cmp.ok,
                                  "max_rel_err": cmp.max_rel_err, "worst_vs_tol": cmp.worst_vs_tol},
               "worker_peak_rss": list(peaks.values()), "workers_restarted": client.run(os.getpid) != pids,
               "loadavg_1min_after": os.getloadavg()[0]}
    print(f"spatial conv2d of a {side}x{side} float32 image ({x.nbytes / 2**30:.2f} GiB, "
          f"{out['input_over_limit']:.0f}x "
          f"the {limit / 2**20:.0f} MiB worker limit), {out['tiles']} tiles: {elapsed:.1f} s; sampled region "
          f"{'matches' if cmp.ok else 'DIFFERS FROM'} the float64 reference (worst {cmp.worst_vs_tol:.2g}x the "
          f"tolerance); worker peak RSS {', '.join(f'{p / 2**20:.0f} MiB' for p in peaks.values())}; "
          f"workers restarted: {out['workers_restarted']}", flush=True)
    return out


def plot(doc, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    b = doc["batch"]
    workers = [1, 2]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(workers, workers, "--", color="gray", label="ideal")
    for chunk, rc in b["by_chunk"].items():
        base = rc["workers"]["1"]["median_s"]
        sp = [base / rc["workers"][str(n)]["median_s"] for n in workers]
        err = [[s - base / rc["workers"][str(n)]["q75_s"] for s, n in zip(sp, workers)],
               [base / rc["workers"][str(n)]["q25_s"] - s for s, n in zip(sp, workers)]]
        ax.errorbar(workers, sp, yerr=err, marker="o", capsize=4,
                    label=f"N{rc['N']}, chunks of {rc['batch_chunk']} ({rc['tasks']} tasks of {base / rc['tasks'] * 1e3:.0f} ms)")
    lay = b["layer"]
    ax.set_title(f"pykern.dask conv2d {lay['C']}->{lay['K']} {lay['H']}x{lay['W']} 3x3 (IQR bars); "
                 f"load avg {b['loadavg_1min_before']:.1f}", fontsize=9)
    ax.set_xlabel("LocalCluster workers (1 thread each, 2-core machine)")
    ax.set_ylabel("speed-up over 1 worker")
    ax.set_xticks(workers)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--plot", metavar="PATH")
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke test)")
    ap.add_argument("--batch", type=lambda v: [tuple(int(p) for p in e.split("/")) for e in v.split(",")],
                    default=[(64, 4), (64, 8), (64, 16), (64, 32), (512, 8), (512, 32)],
                    help="batch size N / images per chunk, comma-separated: one speed-up each "
                         "(default 64/4,64/8,64/16,64/32,512/8,512/32)")
    ap.add_argument("--no-spatial", action="store_true", help="skip the spatially chunked conv2d")
    ap.add_argument("--malloc-default", action="store_true",
                    help="start workers with distributed's own environment (MALLOC_TRIM_THRESHOLD_=65536), "
                         "not pykern.dask.worker_environ()")
    args = ap.parse_args()
    from pykern._install import require_built
    require_built("bench_dask.py")  # never time a source tree's NumPy fallback
    global MALLOC_DEFAULT
    MALLOC_DEFAULT = args.malloc_default
    from pykern.benchmark.environment import environment
    t = time.perf_counter()
    doc = {"command": "python bench/bench_dask.py " + " ".join(sys.argv[1:]), "env": environment(),
           "worker_environ": "distributed's default" if MALLOC_DEFAULT else "pykern.dask.worker_environ()",
           "batch": batch_part(args)}
    if not args.no_spatial:
        doc["spatial"] = spatial_part(args)
    doc["elapsed_s"] = time.perf_counter() - t
    import dask
    import distributed
    doc["env"]["libraries"] |= {"dask": dask.__version__, "distributed": distributed.__version__}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"wrote {args.json}")
    if args.plot:
        try:
            plot(doc, args.plot)
            print(f"wrote {args.plot}")
        except ImportError as e:
            print(f"no plot: {e}")


if __name__ == "__main__":
    main()

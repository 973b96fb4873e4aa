"""pykern on Dask: the ops on dask arrays (NumPy or CuPy chunks), lazily, and the benchmark
over every device of a cluster.

    import dask.array as da, pykern.dask as pkd
    x = da.random.default_rng(0).standard_normal((64, 64, 56, 56), chunks=(8, -1, 28, 28), dtype="float32")
    w = np.random.rand(64, 64, 3, 3).astype(np.float32)
    y = pkd.conv2d(x, w, padding=1)        # a dask array; each task is one pk.conv2d call
    y.compute()                            # on the local threads, or a distributed.Client's cluster

Optional: ``pip install "pykern[dask]"`` (dask[array] and distributed). ``import pykern`` never
imports dask; this package does. Each chunk runs pykern's own dispatch on its worker: NumPy
chunks go to the host variants, CuPy chunks to the GPU ones, and ``backend=``/``variant=`` pass
through. See ops.py for how each op is split, tiles.py for conv2d's halo, bench.py for
``pykern bench --scheduler``, and docs/dask.md.
"""
EXTRA = 'pip install "pykern[dask]" (in a checkout: pip install ".[dask]")'


def _require_dask() -> None:
    """ImportError naming the extra that installs what is missing."""
    try:
        import dask.array  # noqa: F401
    except ImportError as e:
        raise ImportError(f"pykern.dask needs dask[array] (and distributed for a cluster), which is not "
                          f"installed ({e}); {EXTRA}", name="dask") from e


_require_dask()


def worker_environ() -> dict:
    """The environment to start worker processes with for pykern's host kernels: distributed's
    own (``distributed.nanny.pre-spawn-environ``) with glibc's heap left to keep what it frees.

    distributed starts each worker with ``MALLOC_TRIM_THRESHOLD_=65536``, to hand freed memory
    back to the OS. Setting it also turns off glibc's adaptive mmap threshold, so every output and
    workspace over 128 KiB becomes a fresh mapping whose pages fault in again on every call:
    conv2d on 8x64x28x28 with 64 3x3 filters took 13.5 ms a call in such a process against 7.4 ms
    in a plain one. A 64 MiB trim threshold and a 32 MiB mmap threshold brought it to 7.0 ms
    (blocks over 32 MiB are still returned to the OS when freed). Use it before making a cluster:

        dask.config.set({"distributed.nanny.pre-spawn-environ": pykern.dask.worker_environ()})
    """
    import dask
    try:
        import distributed  # noqa: F401  (its import loads its configuration)
    except ImportError as e:
        raise ImportError(f"pykern.dask.worker_environ is for distributed's workers, and distributed is not "
                          f"installed ({e}); {EXTRA}", name="distributed") from e
    return {**dask.config.get("distributed.nanny.pre-spawn-environ"),
            "MALLOC_TRIM_THRESHOLD_": 64 << 20, "MALLOC_MMAP_THRESHOLD_": 32 << 20}


from .bench import cluster_sweep, cluster_table  # noqa: E402
from .ops import conv2d, conv2d_backward_input, conv2d_backward_weight, matmul, relu, relu_backward  # noqa: E402

__all__ = ["cluster_sweep", "cluster_table", "worker_environ", "relu", "relu_backward", "matmul", "conv2d", "conv2d_backward_input",
           "conv2d_backward_weight"]

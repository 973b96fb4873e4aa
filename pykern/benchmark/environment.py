"""The record of where a benchmark ran (machine, GPU, libraries, commit) and of the load that
other processes put on the CPUs meanwhile."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from typing import Optional

from .. import __version__
from .._backends import availability, backends, cuda_simulator_enabled, simulator_enabled
from .baselines import _lib_reason, baseline_settings

# Other processes taking more than this share of the CPUs while a CPU entry ran make its timing
# suspect (see run.entry_flags), and the whole run's table ends with a warning.
BUSY_SHARE = 0.25


def gpu_present() -> tuple[bool, str]:
    """(whether a real GPU can run pykern's kernels here, the reason from pykern.backends())."""
    bk = backends()
    if bk["cuda"].available and not cuda_simulator_enabled():
        return True, bk["cuda"].reason
    if bk["numba"].available and not simulator_enabled():
        return True, bk["numba"].reason
    why = [f"cuda: {bk['cuda'].reason}", f"numba: {bk['numba'].reason}"]
    if simulator_enabled():
        why[1] = "numba: CUDA simulator only (timings meaningless)"
    return False, "; ".join(why)


def _version_str(v: int) -> str:
    """CUDA encodes versions as 1000*major + 10*minor."""
    return f"{v // 1000}.{(v % 1000) // 10}" if v else "unknown"


def gpu_info() -> tuple[Optional[dict], Optional[str]]:
    """(device properties, None) from pykern._cuda (else CuPy), or (None, why not)."""
    why = []
    if availability("cuda").available:
        try:
            from .._device import ext
            p = dict(ext().device_properties())
            p["compute_capability"] = list(p["compute_capability"])
            p["driver_version"] = _version_str(p["driver_version"])
            p["cuda_runtime_version"] = _version_str(p.pop("runtime_version"))
            p["source"] = "pykern._cuda.device_properties()"
            return p, None
        except Exception as e:
            why.append(f"pykern._cuda: {e}")
    else:
        why.append(f"pykern._cuda: {availability('cuda').reason}")
    if _lib_reason("cupy") is None:
        import cupy
        rt = cupy.cuda.runtime
        p = rt.getDeviceProperties(cupy.cuda.Device().id)
        name = p["name"].decode() if isinstance(p["name"], bytes) else p["name"]
        return {"name": name, "compute_capability": [p["major"], p["minor"]],
                "multiprocessors": p["multiProcessorCount"], "total_memory": p["totalGlobalMem"],
                "l2_cache_bytes": p["l2CacheSize"], "driver_version": _version_str(rt.driverGetVersion()),
                "cuda_runtime_version": _version_str(rt.runtimeGetVersion()),
                "source": "cupy.cuda.runtime.getDeviceProperties()"}, None
    has_gpu, reason = gpu_present()
    if has_gpu:  # numba only
        from numba import cuda
        d = cuda.get_current_device()
        name = getattr(d, "name", "unknown GPU")
        info = {"name": name.decode() if isinstance(name, bytes) else name,
                "compute_capability": list(getattr(d, "compute_capability", ())),
                "source": "numba.cuda.get_current_device()"}
        for key, attr in (("multiprocessors", "MULTIPROCESSOR_COUNT"), ("l2_cache_bytes", "L2_CACHE_SIZE")):
            try:
                info[key] = getattr(d, attr)
            except Exception:  # an attribute this numba-cuda does not expose: leave it out
                pass
        return info, None
    return None, reason


def cpu_info() -> dict:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"model": model, "cores": os.cpu_count(), "usable_cores": usable}


def _git(*args, where: Optional[str] = None) -> Optional[str]:
    """git's output in ``where``'s checkout, or by default the source tree's, else the working
    directory's; None where none of them is one."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout
    for d in (where,) if where else (here, os.getcwd()):
        try:
            out = subprocess.run(["git", "-C", d, *args], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            return None
        if out.returncode == 0:
            return out.stdout.strip()
    return None


def git_commit(where: Optional[str] = None) -> Optional[str]:
    """The checkout's commit: $PYKERN_GIT_COMMIT (set by bench/device_run.sh for an installed
    package), else git in ``where`` (a script's own folder), else in the source tree, else in the
    working directory."""
    if os.environ.get("PYKERN_GIT_COMMIT"):
        return os.environ["PYKERN_GIT_COMMIT"]
    return _git("rev-parse", "HEAD", where=where)


def git_checkout(where: Optional[str] = None) -> Optional[dict]:
    """{"commit": git_commit(where), "dirty": whether tracked files differed from it (None where
    that cannot be known: $PYKERN_GIT_COMMIT names a commit, not a tree)}; None without a commit."""
    commit = git_commit(where)
    if commit is None:
        return None
    status = (None if os.environ.get("PYKERN_GIT_COMMIT")
              else _git("status", "--porcelain", "--untracked-files=no", where=where))
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def _lib_version(name: str) -> Optional[str]:
    mod = sys.modules.get(name)
    if mod is None:
        return None  # not imported in this run: not used
    return getattr(mod, "__version__", "unknown")


# What identifies the GPU, not the run: pytest-benchmark compares machine_info between saved runs
# and warns when it differs, so nothing here may change from one run to the next (no clock rate).
_GPU_IDENTITY = ("name", "compute_capability", "multiprocessors", "total_memory", "l2_cache_bytes",
                 "driver_version", "cuda_runtime_version")


def gpu_identity() -> Optional[dict]:
    """The GPU's stable properties (bench/conftest.py adds them to pytest-benchmark's machine_info),
    or None without a GPU."""
    gpu, _ = gpu_info()
    return None if gpu is None else {k: gpu[k] for k in _GPU_IDENTITY if k in gpu}


def environment() -> dict:
    gpu, gpu_reason = gpu_info()
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "package_version": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_info(),
        "gpu": gpu,
        "gpu_reason": gpu_reason,
        "backends": {n: {"available": a.available, "reason": a.reason} for n, a in backends().items()},
        "libraries": {n: _lib_version(n) for n in ("numpy", "numba", "cupy", "torch")},
        "settings": baseline_settings(),
    }


# --- load from other processes ---------------------------------------------------------------


def _cpu_jiffies() -> Optional[tuple]:
    """(busy, total) jiffies of the whole machine from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as f:
            v = [int(a) for a in f.readline().split()[1:9]]  # guest times are inside user/nice already
    except (OSError, ValueError):
        return None
    return sum(v) - v[3] - v[4], sum(v)  # idle and iowait are not busy


class OtherLoad:
    """Share of the machine's CPU time that other processes used while the block ran (None
    where /proc/stat is missing). Our own threads (BLAS workers included) are subtracted."""

    share: Optional[float] = None

    def __enter__(self):
        self._j0, self._t0 = _cpu_jiffies(), os.times()
        return self

    def __exit__(self, *exc):
        j1, t1 = _cpu_jiffies(), os.times()
        if self._j0 is None or j1 is None:
            return
        mine = (t1.user + t1.system - self._t0.user - self._t0.system) * os.sysconf("SC_CLK_TCK")
        self.share = min(1.0, max(0.0, (j1[0] - self._j0[0] - mine) / max(1, j1[1] - self._j0[1])))


def load_summary(share: Optional[float]) -> dict:
    """The run's load from other processes, and the one-line warning when it was busy."""
    out = {"others_cpu_share": share, "busy_share_limit": BUSY_SHARE, "warning": None}
    if share is not None and share > BUSY_SHARE:
        out["warning"] = (f"warning: the machine was busy: other processes took {100 * share:.0f}% of its "
                          f"{os.cpu_count()} CPUs during this run, so CPU timings are low and vary; "
                          "rerun when it is idle")
    return out

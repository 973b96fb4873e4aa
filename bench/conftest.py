"""pytest-benchmark set-up for pykern's benchmarks (see bench/README.md).

    pytest bench/                                           # the default sweep for this machine
    pytest bench/ --bench-op matmul --bench-sizes 128,256   # a slice of it
    pytest bench/ --benchmark-group-by=param:op,param:size --benchmark-json out.json
    pytest bench/ -q --benchmark-disable                    # check every entry once, no timing

Files named bench_*.py are collected here (the project's python_files pattern is test_*.py).
Without a CUDA driver the Numba kernels would only run in the CUDA simulator, which is set up
the same way as in tests/ so that its variants are listed and skipped with the reason.
"""
import ast
import ctypes.util
import os

if "NUMBA_ENABLE_CUDASIM" not in os.environ and ctypes.util.find_library("cuda") is None:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import pytest  # noqa: E402

import pykern as pk  # noqa: E402
from pykern import benchmark as bench  # noqa: E402


def pytest_addoption(parser):
    g = parser.getgroup("pykern-bench", "pykern benchmark selection (bench/)")
    g.addoption("--bench-op", help="comma-separated ops (default: all)")
    g.addoption("--bench-backend", help="comma-separated backends: numpy,numba,cuda (default: all)")
    g.addoption("--bench-variant", help="comma-separated variant names (baselines still run)")
    g.addoption("--bench-sizes", help="sizes as `pykern bench --sizes` takes them: OP=SIZES[;OP=SIZES], "
                                      "or a plain list for --bench-op's ops when they read sizes alike "
                                      "(default: per-device sizes)")
    g.addoption("--bench-dtype", default="auto", help="float32, float64, float16, bfloat16 or auto (default)")
    g.addoption("--bench-no-baselines", action="store_true", help="skip the library baselines")
    g.addoption("--bench-quick", action="store_true", help="quick ceilings (cache-sized arrays, short "
                "runs: seconds less per run), for smoke tests; never for figures")


def pytest_collect_file(file_path, parent):
    # A bench_*.py named on the command line is collected by pytest itself already.
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") and not parent.session.isinitpath(file_path):
        declared = _declared(file_path)
        if declared is None or _excluded(parent.config, declared):
            return None  # not even imported: bench_conv2d_cpu.py and bench_torch_overhead.py import torch
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def _declared(file_path):
    """The module-level BENCH_OPS / BENCH_BACKENDS literals of a benchmark file, read without
    importing it (pytest_collection_modifyitems reads the same names from the imported module);
    None for a script that defines no test and no pytest_generate_tests (bench_overhead.py...)."""
    tree = ast.parse(file_path.read_text())
    if not any(isinstance(n, ast.FunctionDef) and n.name.startswith(("test", "pytest_generate_tests"))
               for n in ast.walk(tree)):
        return None
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and node.targets[0].id in ("BENCH_OPS", "BENCH_BACKENDS"):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass  # not a literal: the imported module's value decides, in modifyitems
    return found


def _excluded(config, declared: dict) -> bool:
    """Whether --bench-op / --bench-backend exclude a file that declares these ops / backends."""
    ops = bench.split_list(config.getoption("--bench-op"))
    backends = bench.split_list(config.getoption("--bench-backend"))
    mod_ops, mod_backends = declared.get("BENCH_OPS"), declared.get("BENCH_BACKENDS")
    return bool((ops and mod_ops is not None and not set(ops) & set(mod_ops))
                or (backends and mod_backends is not None and not set(backends) & set(mod_backends)))


def pytest_report_header(config):
    has_gpu, why = bench.gpu_present()
    return ["pykern backends: " + "; ".join(f"{n}={'yes' if a.available else 'no'}" for n, a in pk.backends().items()),
            "pykern GPU sizes: " + ("yes" if has_gpu else f"no ({why})")]


class Session:
    """What the benchmarks of one pytest run share: reference data, ceilings, results."""

    def __init__(self):
        self.cache = bench.CaseCache()
        self.quick = False  # --bench-quick (set at configure time)
        self.ceilings = {}
        self.records = {}  # nodeid -> record (as in the CLI's JSON) for ratios and the summary

    def ceiling(self, key: str) -> dict:
        if key not in self.ceilings:
            self.ceilings.update(bench.measure_ceilings({key}, quick=self.quick))
        return self.ceilings[key]


_SESSION = Session()


@pytest.fixture(scope="session")
def pykern_session():
    return _SESSION


def pytest_configure(config):
    _SESSION.quick = bool(config.getoption("--bench-quick", default=False))


def pytest_collection_modifyitems(config, items):
    """--bench-op and --bench-backend select in every benchmark file: a file that declares
    BENCH_OPS / BENCH_BACKENDS (what it times) is deselected when the selection excludes it;
    bench_kernels.py, which declares neither, filters its own entries through bench.plan."""
    keep, drop = [], []
    for item in items:
        mod = getattr(item, "module", None)
        declared = {k: getattr(mod, k) for k in ("BENCH_OPS", "BENCH_BACKENDS") if hasattr(mod, k)}
        (drop if _excluded(config, declared) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# pytest-benchmark warns "machine_info is different" when --benchmark-compare finds any change,
# so machine_info holds only what identifies the machine. Its own machine_info already names the
# CPU, Python and OS, and its datetime the date: pykern adds the GPU it cannot see, and the run's
# libraries, backend reasons and baseline settings go to the JSON's "pykern_run". The commit stays
# there too: pytest-benchmark's commit_info reads the working directory's git ("unversioned" when
# pytest runs from outside the checkout), pykern's finds the checkout itself.
_VOLATILE_CPU_KEYS = ("hz_actual", "hz_actual_friendly")  # py-cpuinfo's current clock frequency
_IN_PYTEST_BENCHMARK_JSON = ("date", "python", "platform")


def pytest_benchmark_update_machine_info(config, machine_info):
    for k in _VOLATILE_CPU_KEYS:
        (machine_info.get("cpu") or {}).pop(k, None)
    machine_info["pykern"] = {"gpu": bench.gpu_identity()}


def _ratios():
    recs = list(_SESSION.records.values())
    bench.add_baseline_ratios(recs)
    return recs


def pytest_benchmark_update_json(config, benchmarks, output_json):
    _ratios()
    for b in output_json.get("benchmarks", []):
        rec = _SESSION.records.get(b.get("fullname"))
        if rec is not None:
            b["extra_info"]["ratio_to_baseline"] = rec["ratio_to_baseline"]
            b["extra_info"]["baseline"] = rec["baseline"]
    output_json["pykern_ceilings"] = _SESSION.ceilings
    output_json["pykern_run"] = {k: v for k, v in bench.environment().items() if k not in _IN_PYTEST_BENCHMARK_JSON}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    recs = [r for r in _ratios() if r["median_s"]]
    if not recs:
        return
    tr = terminalreporter
    tr.section("pykern: rate, % of measured ceiling, ratio to baseline (baseline time / time)")
    for key, c in _SESSION.ceilings.items():
        tr.write_line(f"ceiling {key}: " + (f"{c['rate']:.1f} {c['unit']} ({c['how']})" if c.get("rate")
                                           else f"unavailable: {c.get('reason')}"))
    for r in recs:
        pct = "-" if r["pct_of_ceiling"] is None else f"{r['pct_of_ceiling']:5.1f}%"
        ratio = "-" if r["ratio_to_baseline"] is None else f"{r['ratio_to_baseline']:.2f}x"
        flags = bench.entry_flags(r, _SESSION.ceilings)
        tr.write_line(f"{'!' if flags else ' '} {r['op']:7s} {r['case_id']:28s} {r['dtype']:8s} {r['key']:26s} "
                      f"{bench.fmt_time(r['median_s']):>10s} {r['rate']:10.1f} {r['unit']:8s} {pct:>7s} {ratio:>7s}")
        for flag in flags:
            tr.write_line(f"      ! {flag}")

"""Benchmarks that answer "which kernel, and CPU or GPU?": the sweep and the CPU-vs-GPU comparison.

Everything is generated from the registry (``pykern.variants()``) and the op specs
(``pykern.ops.SPECS``): a newly registered variant is benchmarked without touching this package,
and so is a new op: nothing here names one. An op's benchmark cases, --sizes grammar, plot axis,
library baselines and GPU workspace are methods of its spec, with defaults in
``pykern.ops._spec.OpSpec`` for an op that declares none.
Every timing goes through ``pykern._timing.measure`` (warm-up, cache flush, repeats, spread).

Modules, in the order data flows through them:

    cases        each op's benchmark sizes, read from its spec, --op/--sizes parsing, work per case
    baselines    library yardsticks each op's spec lists, timed in the same run (NumPy/BLAS, torch, CuPy)
    environment  machine, GPU, libraries and commit of a run; load from other processes
    plan         targets (variants and baselines) and entries; what a sweep runs and skips
    memory       each case's working set, estimated before it runs, against the memory available
    ceilings     the roofline measured now, for "% of ceiling": CPU peak FMA and STREAM bandwidth, GPU GEMM and copy
    run          one entry checked then timed, suspect timings re-timed, the sweep
    compare      CPU vs GPU per size, with and without host<->device copies
    report       text tables, the one-screen summary, the JSON writer
    plots        the ladder and the comparison as matplotlib figures

Vocabulary: a *target* is something that can be timed (a registered variant, or a baseline such
as cuBLAS through CuPy); an *entry* is a target on one case in one dtype; a *case* is the op
spec's dict of sizes and parameters. The scripts around this package (the pytest-benchmark
suite, the device run and its summary) live in ``bench/``.
"""
from __future__ import annotations

from .._dispatch import Unsupported
from ..ops import SPECS
from .baselines import BASELINE_SETTINGS, Baseline, all_baselines, baseline_settings
from .cases import (BENCH_CASES, BENCH_LATE_CASES, COMPARE_CASES, SELECTION_HELP, SIZE_FORMS, parse_ops,
                    parse_size, parse_sizes, select, work)
from .ceilings import ceiling_key, measure_ceilings
from .compare import compare_sweep, crossover
from .environment import BUSY_SHARE, OtherLoad, environment, gpu_identity, gpu_info, gpu_present, load_summary
from .memory import case_arrays, check_fit, estimate, gpu_available, host_available
from .plan import Entry, Target, plan, split_list
from .plots import bench_figure, compare_figure, plot_bench, plot_compare, pyplot
from .report import bench_table, compare_table, crossover_text, fmt_time, summary_lines, write_json
from .run import (DEFAULT_ENTRY_BUDGET_S, NOISY_IQR_REL, RETIME_BUDGET_FACTOR, SCHEMA, CaseCache, CaseData,
                  add_baseline_ratios, check_runner, clock_for, entry_flags, flusher, make_runner, new_record,
                  noisy, run_entry, run_entry_checked, sweep, warmup_runs, whole_call)



def cluster_sweep(scheduler, *args, **kwargs) -> dict:
    """``sweep`` on every distinct device of a Dask cluster (``pykern bench --scheduler``):
    pykern.dask.bench.cluster_sweep, which needs the [dask] extra; this package never imports
    dask itself."""
    from ..dask.bench import cluster_sweep as run
    return run(scheduler, *args, **kwargs)


__all__ = [
    "SPECS", "Unsupported", "cluster_sweep",
    "BASELINE_SETTINGS", "Baseline", "all_baselines", "baseline_settings",
    "BENCH_CASES", "BENCH_LATE_CASES", "COMPARE_CASES", "SELECTION_HELP", "SIZE_FORMS",
    "parse_ops", "parse_size", "parse_sizes", "select", "work",
    "ceiling_key", "measure_ceilings",
    "compare_sweep", "crossover",
    "BUSY_SHARE", "OtherLoad", "environment", "gpu_identity", "gpu_info", "gpu_present", "load_summary",
    "case_arrays", "check_fit", "estimate", "gpu_available", "host_available",
    "Entry", "Target", "plan", "split_list",
    "bench_figure", "compare_figure", "plot_bench", "plot_compare", "pyplot",
    "bench_table", "compare_table", "crossover_text", "fmt_time", "summary_lines", "write_json",
    "DEFAULT_ENTRY_BUDGET_S", "NOISY_IQR_REL", "RETIME_BUDGET_FACTOR", "SCHEMA", "CaseCache", "CaseData",
    "add_baseline_ratios", "check_runner", "clock_for", "entry_flags", "flusher", "make_runner", "new_record",
    "noisy", "run_entry", "run_entry_checked", "sweep", "warmup_runs", "whole_call",
]

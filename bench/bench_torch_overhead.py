"""Per-call overhead of pykern.torch on the CPU: its ops and modules against torch's own, and
against pykern called on NumPy arrays directly (what the adapter cannot go below).

    python bench/bench_torch_overhead.py                       # the table, about 10 s
    python bench/bench_torch_overhead.py --samples 50 --json /tmp/torch_overhead.json

Cases (float32): relu on 1,000 elements, the forward alone and forward+backward; the digits CNN's
two convolutions (bench/train_cnn.py: batch 32, 16x16 images; conv 3x3 1->16 at 16x16 and
16->32 at 8x8, padding 1, bias), ``pkt.nn.Conv2d`` against ``torch.nn.Conv2d``, forward+backward
with the gradients of the weight, the bias and, for the second layer only, the input (the first
layer's input is the data, as in training). Columns: ``torch``; ``pykern (NumPy)``, the same
work as pk.* calls on NumPy arrays (pk.relu + pk.relu_backward, pk.conv2d +
pk.conv2d_backward_input/weight + the bias gradient's sum); ``pykern.torch``; the adapter's
overhead, pykern.torch minus pykern (NumPy); and pykern.torch relative to torch.

Method: every implementation's results are checked against torch's before anything is timed.
A sample is a block of back-to-back calls (about --block-ms long; per-call time = block time /
calls), timed through pykern._timing.measure on the host clock; the implementations take turns
sample by sample, so a shared machine's changing load falls on all alike. Reported: the median
over --samples samples and the interquartile range (IQR). torch and NumPy's BLAS get the same
thread count (--threads, default 1: steadier where other work shares the cores). Writes nothing
unless --json is given.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

import pykern as pk  # the installed copy: main() refuses a source tree that was never built
from pykern._timing import host_clock, measure, summarize  # noqa: E402

try:  # without torch, --help still works and a run says what to install
    import pykern.torch as pkt
    import torch
    TORCH_MISSING = None
except ImportError as e:
    TORCH_MISSING = str(e)

RELU_SIZE = 1_000
BATCH, SIZE = 32, 16  # bench/train_cnn.py's defaults
# The digits CNN's convolutions: (name, C, K, H=W of the input, input needs a gradient).
CONVS = [("conv1", 1, 16, SIZE, False), ("conv2", 16, 32, SIZE // 2, True)]
COLUMNS = ("torch", "pykern (NumPy)", "pykern.torch")


# --- cases: each is {column: a zero-argument call} plus a check of the results -------------------
def relu_forward(rng):
    x = torch.from_numpy(rng.standard_normal(RELU_SIZE).astype(np.float32))
    xn = x.numpy()
    calls = {"torch": lambda: torch.relu(x), "pykern (NumPy)": lambda: pk.relu(xn),
             "pykern.torch": lambda: pkt.relu(x)}
    return calls, {k: (lambda f=f: [torch.as_tensor(f())]) for k, f in calls.items()}


def relu_forward_backward(rng):
    x = torch.from_numpy(rng.standard_normal(RELU_SIZE).astype(np.float32)).requires_grad_()
    g = torch.from_numpy(rng.standard_normal(RELU_SIZE).astype(np.float32))
    xn, gn = x.detach().numpy(), g.numpy()

    def numpy_step():
        y = pk.relu(xn)
        return y, pk.relu_backward(gn, y)

    def torch_step(relu):
        y = relu(x)
        return (y,) + torch.autograd.grad(y, x, g)
    calls = {"torch": lambda: torch_step(torch.relu), "pykern (NumPy)": numpy_step,
             "pykern.torch": lambda: torch_step(pkt.relu)}
    return calls, {k: (lambda f=f: [torch.as_tensor(t).detach() for t in f()]) for k, f in calls.items()}


def conv_forward_backward(rng, c, k, hw, input_grad):
    x = torch.from_numpy(rng.standard_normal((BATCH, c, hw, hw)).astype(np.float32)).requires_grad_(input_grad)
    g = torch.from_numpy(rng.standard_normal((BATCH, k, hw, hw)).astype(np.float32))
    ref = torch.nn.Conv2d(c, k, 3, padding=1)
    mod = pkt.nn.Conv2d(c, k, 3, padding=1)
    mod.load_state_dict(ref.state_dict())
    xn, gn = x.detach().numpy(), g.numpy()
    wn, bn = ref.weight.detach().numpy(), ref.bias.detach().numpy()

    def numpy_step():
        y = pk.conv2d(xn, wn, bn, padding=1)
        dx = (pk.conv2d_backward_input(gn, wn, xn.shape, padding=1),) if input_grad else ()
        return (y,) + dx + (pk.conv2d_backward_weight(xn, gn, wn.shape, padding=1), gn.sum((0, 2, 3)))

    def torch_step(conv):
        y = conv(x)
        wrt = ((x,) if input_grad else ()) + (conv.weight, conv.bias)
        return (y,) + torch.autograd.grad(y, wrt, g)
    calls = {"torch": lambda: torch_step(ref), "pykern (NumPy)": numpy_step,
             "pykern.torch": lambda: torch_step(mod)}
    return calls, {k: (lambda f=f: [torch.as_tensor(t).detach() for t in f()]) for k, f in calls.items()}


def cases(seed: int) -> list:
    rng = np.random.default_rng(seed)
    out = [(f"relu forward ({RELU_SIZE:,})", *relu_forward(rng)),
           (f"relu forward+backward ({RELU_SIZE:,})", *relu_forward_backward(rng))]
    for name, c, k, hw, input_grad in CONVS:
        label = f"Conv2d {name} fwd+bwd ({BATCH},{c},{hw},{hw})->{k}"
        out.append((label, *conv_forward_backward(rng, c, k, hw, input_grad)))
    return out


def check(label: str, results: dict) -> None:
    """Each implementation's results against torch's (float32 rounding: im2col sums in another order)."""
    want = results["torch"]()
    for column in COLUMNS[1:]:
        got = results[column]()
        assert len(got) == len(want), f"{label}, {column}: {len(got)} results, torch gives {len(want)}"
        for i, (a, b) in enumerate(zip(got, want)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4,
                                       msg=lambda m: f"{label}, {column}, result {i}: {m}")


# --- timing -------------------------------------------------------------------------------------
def calls_per_block(run, block_s: float) -> int:
    """How many back-to-back calls fill about ``block_s`` (after a warm-up call)."""
    run()
    t0 = time.perf_counter()
    run()
    return max(1, round(block_s / max(time.perf_counter() - t0, 1e-9)))


def time_case(calls: dict, samples: int, block_s: float, fixed_calls: int) -> dict:
    """{column: Timing of one call}: the columns take turns, one block each per round."""
    n = {col: fixed_calls or calls_per_block(run, block_s) for col, run in calls.items()}
    blocks = {}
    for col, run in calls.items():
        def block(run=run, n=n[col]):
            for _ in range(n):
                run()
        blocks[col] = block
    per_call = {col: [] for col in calls}
    for _ in range(samples):
        for col, block in blocks.items():
            timing, _ = measure(block, host_clock, warmup=0, min_reps=1, max_reps=1)
            per_call[col].append(timing.median / n[col])
    return {col: (summarize(s), n[col]) for col, s in per_call.items()}


# --- report -------------------------------------------------------------------------------------
def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f}"


def print_table(rows: list) -> None:
    head = ["case"] + [f"{c} (us, IQR)" for c in COLUMNS] + ["adapter (us)", "pykern.torch / torch"]
    lines = [head]
    for r in rows:
        t = r["timings"]
        lines.append([r["case"]] + [f"{us(t[c]['median_s'])} ({us(t[c]['iqr_s'])})" for c in COLUMNS]
                     + [us(r["adapter_overhead_s"]), f"{r['ratio_to_torch']:.1f}x"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for j, line in enumerate(lines):
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths))))
        if j == 0:
            print("  ".join("-" * w for w in widths))


def pykern_commit() -> str:
    """The checkout's commit (with '-dirty' for uncommitted changes), or '' outside a git checkout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(pk.__file__)))
    try:
        sha = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return sha + ("-dirty" if sha and dirty else "")


def set_threads(n: int):
    """torch's and NumPy's BLAS's thread counts to ``n``; returns what puts them back (main is
    also called from tests, in a process that goes on)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # NumPy's BLAS keeps its default; the header says how many threads torch had
        return lambda: torch.set_num_threads(before)
    limits = threadpool_limits(n)

    def restore():
        limits.restore_original_limits()
        torch.set_num_threads(before)
    return restore


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=25, help="timed blocks per implementation and case (median, IQR)")
    ap.add_argument("--block-ms", type=float, default=10.0, help="about how long one block of calls runs")
    ap.add_argument("--calls", type=int, default=0, help="calls per block (0: as many as fill --block-ms)")
    ap.add_argument("--threads", type=int, default=1, help="threads for torch and for NumPy's BLAS alike")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="PATH", help="also write the results here (nothing is written otherwise)")
    ap.add_argument("--note", default="", help="what this run measures, printed and kept in the JSON "
                    "(e.g. which registration of the operators, when comparing two)")
    args = ap.parse_args(argv)
    from pykern._install import require_built
    require_built("bench_torch_overhead.py")  # never time a source tree's NumPy fallback
    if TORCH_MISSING:
        ap.exit(2, f"bench_torch_overhead.py needs torch (install it first, then pykern's [torch] extra): "
                   f"{TORCH_MISSING}\n")
    if args.samples < 1 or args.calls < 0 or args.block_ms <= 0 or args.threads < 1:
        ap.error("--samples and --threads must be >= 1, --calls >= 0, --block-ms > 0")
    restore_threads = set_threads(args.threads)
    try:
        return run(args, argv)
    finally:
        restore_threads()


def run(args, argv) -> dict:
    commit = pykern_commit()
    print(f"pykern {pk.__version__}{f' ({commit})' if commit else ''}, torch {torch.__version__}, "
          f"NumPy {np.__version__}, Python {platform.python_version()}; CPU, {torch.get_num_threads()} thread(s); "
          f"per call: median of {args.samples} blocks of back-to-back calls" + (f"\n{args.note}" if args.note else ""))
    load_before = os.getloadavg()
    rows = []
    for label, calls, results in cases(args.seed):
        check(label, results)
        timed = time_case(calls, args.samples, args.block_ms / 1e3, args.calls)
        t = {c: {"median_s": tm.median, "q25_s": tm.q25, "q75_s": tm.q75, "iqr_s": tm.iqr, "samples": tm.runs,
                 "calls_per_sample": n} for c, (tm, n) in timed.items()}
        rows.append({"case": label, "timings": t,
                     "adapter_overhead_s": t["pykern.torch"]["median_s"] - t["pykern (NumPy)"]["median_s"],
                     "ratio_to_torch": t["pykern.torch"]["median_s"] / t["torch"]["median_s"]})
    load = {"before": load_before, "after": os.getloadavg()}
    print()
    print_table(rows)
    print(f"\nadapter = pykern.torch - pykern (NumPy): what the torch custom operators, autograd and the "
          f"tensor<->array conversion add per call.\nload average (1, 5, 15 min) before "
          f"{', '.join(f'{v:.2f}' for v in load['before'])}, after {', '.join(f'{v:.2f}' for v in load['after'])} "
          f"on {os.cpu_count()} CPUs: other processes' work slows every column")
    result = {"benchmark": "torch_overhead",
              "command": "python bench/bench_torch_overhead.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "environment": {"pykern": pk.__version__, "commit": commit, "torch": torch.__version__,
                              "numpy": np.__version__, "python": platform.python_version(),
                              "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "load_average": load},
              "note": args.note, "config": vars(args), "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()

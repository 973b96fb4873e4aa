"""What spatial padding costs conv2d on the CPU, torch (oneDNN) against pykern, on the ResNet layers.

    python bench/conv2d_padding_cost.py [--reps 15] [--json PATH]

Each layer runs twice per library, on the same output: as given (padding p) and on the input
padded beforehand (F.pad, then padding 0), where every padded tap is a real multiply by zero.
A library that skips the taps that meet padding runs the first faster by up to the ratio of the
nominal taps (P*Q*R*S) to the taps that meet the input (the `taps` column); one that multiplies
the padding as zeros, as pykern does, runs both alike. The second table says which pattern each
keeps: an Inf in the weights at a tap that meets padding makes 0 * Inf = NaN in the outputs of
the first row only where padding is multiplied.

Why it matters (issue 19, goal 1): pykern's accuracy contract multiplies padding like zeros (as
torch's float64 and non-oneDNN paths do); oneDNN's float32 path skips those taps, so on the 7x7
layer it does 22% fewer multiplies than the time ratio's denominator counts. Timed as
bench_conv2d_cpu.py times (its time_side_by_side: blocks of calls alternating between the four
implementations, a pause before each; medians), with glibc's allocation thresholds raised as
there. Run it on an installed pykern, from outside the repository root.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _valid_taps(size: int, out: int, taps: int, stride: int, pad: int) -> int:
    """How many (output position, tap) pairs along one axis read the input, not padding."""
    return sum(1 for o in range(out) for t in range(taps) if 0 <= o * stride + t - pad < size)


def layer_timings(g: dict, reps: int) -> dict:
    """One layer's four timings (ms) and their ratios."""
    import torch
    import torch.nn.functional as F
    from bench_conv2d_cpu import time_side_by_side

    import pykern as pk
    from pykern._timing import summarize
    stride, pad = g.get("stride", 1), g["padding"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((g["N"], g["C"], g["H"], g["W"])).astype(np.float32)
    w = rng.standard_normal((g["K"], g["C"], g["R"], g["S"])).astype(np.float32)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    tx, tw, txp = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(xp)
    impls = {
        "torch": lambda: F.conv2d(tx, tw, stride=stride, padding=pad),
        "torch_prepadded": lambda: F.conv2d(txp, tw, stride=stride),
        "pykern": lambda: pk.conv2d(x, w, stride=stride, padding=pad),
        "pykern_prepadded": lambda: pk.conv2d(xp, w, stride=stride),
    }
    samples = time_side_by_side(impls, reps)  # bench_conv2d_cpu.py's alternating blocks
    p = (g["H"] + 2 * pad - g["R"]) // stride + 1
    q = (g["W"] + 2 * pad - g["S"]) // stride + 1
    valid = _valid_taps(g["H"], p, g["R"], stride, pad) * _valid_taps(g["W"], q, g["S"], stride, pad)
    ms = {k: summarize(v).median * 1e3 for k, v in samples.items()}
    return {"ms": ms, "nominal_over_valid_taps": p * q * g["R"] * g["S"] / valid,
            "torch_prepadded_over_padded": ms["torch_prepadded"] / ms["torch"],
            "pykern_prepadded_over_padded": ms["pykern_prepadded"] / ms["pykern"],
            "pykern_over_torch": ms["pykern"] / ms["torch"],
            "pykern_over_torch_prepadded": ms["pykern"] / ms["torch_prepadded"]}


def nan_patterns() -> dict:
    """Whether an Inf weight at a tap that meets padding makes NaN, per implementation."""
    import torch
    import torch.nn.functional as F

    import pykern as pk
    x = torch.rand(2, 16, 8, 8) + 0.5  # finite, positive: only 0 * Inf can make a NaN
    w = torch.rand(4, 16, 3, 3) + 0.5
    w[0, 0, 0, 0] = float("inf")  # tap (0, 0) meets the top padding row for output row 0

    def row0(y):
        return bool(np.isnan(np.asarray(y)[0, 0, 0]).any())
    out = {"torch float32 (oneDNN)": row0(F.conv2d(x, w, padding=1)),
           "torch float64": row0(F.conv2d(x.double(), w.double(), padding=1)),
           "pykern float32": row0(pk.conv2d(x.numpy(), w.numpy(), padding=1))}
    with torch.backends.mkldnn.flags(enabled=False):
        out["torch float32, oneDNN off"] = row0(F.conv2d(x, w, padding=1))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=15, help="timed calls per implementation and layer")
    ap.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    args = ap.parse_args(argv)
    from pykern._install import require_built
    require_built("conv2d_padding_cost.py")  # never time a source tree's NumPy fallback
    try:
        import torch  # noqa: F401
    except ImportError as e:
        print(f"torch is not installed ({e}): nothing to compare against", file=sys.stderr)
        return 2
    from bench_conv2d_cpu import LAYERS, tune_malloc
    print("allocator: " + tune_malloc())  # as bench_conv2d_cpu.py: no page faults of fresh outputs timed
    rows = {name: layer_timings(g, args.reps) for name, g in LAYERS.items()}
    print(f"{'layer':22s} {'taps':>6s} {'torch':>8s} {'prepadded':>10s} {'ratio':>6s} {'pykern':>8s} "
          f"{'prepadded':>10s} {'ratio':>6s} {'pk/torch':>9s} {'pk/torch prepadded':>19s}")
    for name, r in rows.items():
        ms = r["ms"]
        print(f"{name:22s} {r['nominal_over_valid_taps']:6.3f} {ms['torch']:7.2f}ms {ms['torch_prepadded']:8.2f}ms "
              f"{r['torch_prepadded_over_padded']:6.3f} {ms['pykern']:7.2f}ms {ms['pykern_prepadded']:8.2f}ms "
              f"{r['pykern_prepadded_over_padded']:6.3f} {r['pykern_over_torch']:9.3f} {r['pykern_over_torch_prepadded']:19.3f}")
    gm = {k: float(np.exp(np.mean([np.log(r[k]) for r in rows.values()])))
          for k in ("nominal_over_valid_taps", "pykern_over_torch", "pykern_over_torch_prepadded")}
    print(f"geometric means: nominal/valid taps {gm['nominal_over_valid_taps']:.3f}, pykern/torch "
          f"{gm['pykern_over_torch']:.3f}, pykern/torch on the pre-padded input {gm['pykern_over_torch_prepadded']:.3f}")
    nans = nan_patterns()
    print("NaN from padding x Inf weight:", ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in nans.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"what": __doc__.split("\n\n")[0], "command": "python bench/conv2d_padding_cost.py "
                       + " ".join(argv if argv is not None else sys.argv[1:]),
                       "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "layers": rows,
                       "geomean": gm, "nan_from_padding": nans}, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

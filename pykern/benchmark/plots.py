"""Plots a person reads without the table: the variant ladder (rate per size, IQR error bars,
measured ceiling) and CPU vs GPU time per size with the crossover drawn and said in words."""
from __future__ import annotations

from typing import Optional

from ..ops import SPECS
from .cases import work
from .ceilings import ceiling_key
from .report import is_noisy
from .run import NOISY_IQR_REL


def pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError as e:
        raise RuntimeError(f"--plot needs matplotlib ({e}); pip install matplotlib") from None


# Datasheet peaks (dense, no sparsity) drawn on GPU plots as a dotted line above the measured
# ceiling; never used for "% of ceiling", which is always against a rate measured in the same run.
# Matched by substring of the device name, most specific first. Sources: NVIDIA product pages.
GPU_PEAKS = [
    ("H200", {"GB/s": 4800.0, "float32": 67e3, "float16": 989e3, "bfloat16": 989e3, "float64": 34e3}),
    ("H100 PCIe", {"GB/s": 2000.0, "float32": 51e3, "float16": 756e3, "bfloat16": 756e3, "float64": 26e3}),
    ("H100", {"GB/s": 3350.0, "float32": 67e3, "float16": 989e3, "bfloat16": 989e3, "float64": 34e3}),
    ("A100-SXM4-80GB", {"GB/s": 2039.0, "float32": 19.5e3, "float16": 312e3, "bfloat16": 312e3, "float64": 9.7e3}),
    ("A100", {"GB/s": 1555.0, "float32": 19.5e3, "float16": 312e3, "bfloat16": 312e3, "float64": 9.7e3}),
]


def gpu_peak(name: Optional[str], unit: str, dtype: str) -> Optional[float]:
    """The datasheet peak for a GPU name (GB/s, or GFLOP/s for ``dtype``), or None if unknown."""
    for key, peaks in GPU_PEAKS:
        if name and key in name:
            return peaks.get("GB/s" if unit == "GB/s" else dtype)
    return None


def _plain_number(v: float, _pos=None) -> str:
    """Tick text without powers of ten: 20, 500, 0.05, 2,000."""
    if v <= 0:
        return ""
    if v >= 1:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _time_tick(v: float, _pos=None) -> str:
    if v <= 0:
        return ""
    for scale, unit in ((1, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")):
        if v >= scale * 0.999:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.1e} s"


def _readable_log_axis(axis, fmt) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(fmt))
    axis.set_minor_formatter(NullFormatter())


def dodge(i: int, n: int, span: float = 0.7) -> float:
    """x offset of the i-th of ``n`` targets drawn at one size: side by side within ``span`` of
    the tick, so that equal values at one size (a one-size sweep, close rates) never hide each
    other. Every panel dodges, lines and markers alike."""
    return (i - (n - 1) / 2) * span / max(1, n)


def _legend_outside(ax, handles) -> None:
    """The legend right of the axes: inside, it covers points wherever it is put."""
    ax.legend(handles=handles, fontsize=7, ncol=1, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              borderaxespad=0.0)


def _wrap(text: str, width: int) -> str:
    import textwrap
    return "\n".join(textwrap.fill(part, width) for part in text.split("\n"))


def _device_words(doc: dict, device: str) -> str:
    env = doc["env"]
    if device == "gpu" and env.get("gpu"):
        g = env["gpu"]
        return f"GPU {g['name']}" + (f" ({g['multiprocessors']} SMs)" if g.get("multiprocessors") else "")
    cpu = env["cpu"]
    return f"CPU {cpu['model']} ({cpu.get('usable_cores') or cpu.get('cores')} cores)"


def _caption(doc: dict, extra: str = "") -> str:
    env = doc["env"]
    date = (env.get("date") or "")[:16].replace("T", " ")
    text = (f"pykern {env.get('package_version')}, commit {(env.get('git_commit') or 'unknown')[:10]}, {date} UTC. "
            + extra)
    warning = (doc.get("load") or {}).get("warning")
    if warning:
        text += " " + warning[0].upper() + warning[1:] + "."
    return text


SKIPPED_STATUSES = ("skipped", "wrong", "error")


def _add_caption(fig, text: str) -> None:
    """Wrapped text under the axes, inside the saved image (savefig uses bbox_inches='tight')."""
    width = int(fig.get_figwidth() * 13)  # characters of 7-pt text per line
    fig.text(0.01, 0.0, _wrap(text, width), fontsize=7, va="top", ha="left", gid="caption")


def bench_figure(doc: dict):
    """The variant ladder as a matplotlib Figure: rate per variant per size, one panel per op
    and device, IQR error bars, the measured ceiling (and a GPU's datasheet peak) as lines."""
    plt = pyplot()
    from matplotlib.lines import Line2D
    panels = list(dict.fromkeys((r["op"], r["device"]) for r in doc["entries"]))
    if not panels:
        raise RuntimeError("nothing to plot: the sweep has no entries")
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 5.2 * len(panels)), squeeze=False)
    for ax, (op, device) in zip(axes[:, 0], panels):
        rows = [r for r in doc["entries"] if r["op"] == op and r["device"] == device]
        dtypes = sorted({r["dtype"] for r in rows}, key=lambda d: (d != "float32", d))
        unit = rows[0]["unit"]
        xs = list(dict.fromkeys((r["case_id"], r["dtype"]) for r in
                                sorted(rows, key=lambda r: (work(op, r["case"], r["dtype"]), r["dtype"]))))
        labels = {}
        for r in rows:
            labels[(r["case_id"], r["dtype"])] = (SPECS[op].tick_label(r["case"])
                                                  + ("" if len(dtypes) == 1 else f"\n{r['dtype']}"))
        targets = list(dict.fromkeys((r["kind"], r["key"]) for r in rows))
        categorical = SPECS[op].categorical  # unrelated cases: markers only, never a line between them
        not_run = False
        for ti, (kind, key) in enumerate(targets):
            pts = sorted(((xs.index((r["case_id"], r["dtype"])), r) for r in rows if r["key"] == key),
                         key=lambda p: p[0])
            dx = dodge(ti, len(targets))
            ok = [(x, r) for x, r in pts if r.get("rate")]
            color = f"C{ti % 10}"
            if ok:
                x = [x + dx for x, _ in ok]
                y = [r["rate"] for _, r in ok]
                w = [work(op, r["case"], r["dtype"]) / 1e9 for _, r in ok]
                lo = [yy - (ww / r["q75_s"] if r.get("q75_s") else yy) for yy, ww, (_, r) in zip(y, w, ok)]
                hi = [(ww / r["q25_s"] if r.get("q25_s") else yy) - yy for yy, ww, (_, r) in zip(y, w, ok)]
                if categorical:
                    style = {"linestyle": "none"}
                elif kind == "baseline":
                    style = {"linestyle": "--", "linewidth": 2.0}
                else:
                    style = {"linestyle": "-", "linewidth": 1.2}
                ax.errorbar(x, y, yerr=[lo, hi], color=color, marker="s" if kind == "baseline" else "o",
                            markersize=6, capsize=3, label=key + (" (baseline)" if kind == "baseline" else ""), **style)
                flagged = [(xx, yy) for xx, yy, (_, r) in zip(x, y, ok) if r.get("flags")]
                if flagged:
                    ax.plot([f[0] for f in flagged], [f[1] for f in flagged], linestyle="none", marker="o",
                            markersize=13, markerfacecolor="none", markeredgecolor="red", zorder=5)
            missing = [(x + dx, r) for x, r in pts if not r.get("rate") and r["status"] in SKIPPED_STATUSES]
            if missing:  # at the bottom of the panel, in the target's colour, never a silent gap
                not_run = True
                ax.plot([x for x, _ in missing], [0.03] * len(missing), linestyle="none", marker="x",
                        markersize=8, markeredgewidth=2, color=color, transform=ax.get_xaxis_transform())
        for dt in dtypes:
            ckey = ceiling_key(op, device, dt)
            c = doc.get("ceilings", {}).get(ckey) or {}
            if c.get("rate"):
                ax.axhline(c["rate"], color="black", linestyle="-.", linewidth=1.2,
                           label=_wrap(f"measured ceiling {c['rate']:,.0f} {unit}"
                                       + ("" if unit == "GB/s" else f" {dt}")
                                       + f": {c.get('how', '').split(';')[0]}", 45))
                one = c.get("single_thread_rate")
                if one and (c.get("threads") or 1) > 1:  # what the one-thread rungs stand against
                    ax.axhline(one, color="black", linestyle=":", linewidth=1.0,
                               label=f"measured 1-thread ceiling {one:,.0f} {unit}"
                               + ("" if unit == "GB/s" else f" {dt}"))
            peak = gpu_peak((doc["env"].get("gpu") or {}).get("name"), unit, dt) if device == "gpu" else None
            if peak:
                ax.axhline(peak, color="gray", linestyle=":", linewidth=1.5,
                           label=f"datasheet peak {peak:,.0f} {unit}" + ("" if unit == "GB/s" else f" {dt}"))
        handles, _ = ax.get_legend_handles_labels()
        if not_run:
            handles.append(Line2D([], [], linestyle="none", marker="x", color="gray",
                                  label="not run (skipped, wrong or failed: see the table)"))
        if any(r.get("flags") for r in rows):
            handles.append(Line2D([], [], linestyle="none", marker="o", markersize=11, markerfacecolor="none",
                                  markeredgecolor="red", label="suspect timing (noisy, above ceiling or busy)"))
        ax.set_xticks(range(len(xs)))
        ax.set_xticklabels([labels[x] for x in xs], rotation=0 if categorical else 20,
                           ha="center" if categorical else "right", fontsize=8)
        ax.set_xlim(-0.6, len(xs) - 0.4)
        ax.set_yscale("log")
        _readable_log_axis(ax.yaxis, _plain_number)
        ax.set_ylabel(f"kernel rate ({unit}, higher is better)")
        ax.set_xlabel(SPECS[op].x_label)
        ax.set_title(_wrap(f"{op} on the {_device_words(doc, device)}, {', '.join(dtypes)}: median rate of the "
                           "kernel alone (the pk.<op> call times are in the table), error bars = IQR", 90),
                     fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        _legend_outside(ax, handles)
    fig.tight_layout()
    _add_caption(fig, _caption(doc, "Median of repeated runs after a check against the float64 reference; "
                                    "% of ceiling and ratios are in the table."))
    return fig


def _save(fig, path: str) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    pyplot().close(fig)


def plot_bench(doc: dict, path: str) -> None:
    _save(bench_figure(doc), path)


def crossover_words(res: dict, key: str) -> Optional[str]:
    """'GPU wins at 1024 and above (copies counted)', or None without a GPU column."""
    if not res.get("gpu"):
        return None
    setting = "copies counted" if key == "crossover_with_copies" else "data already on the GPU"
    cid = res.get(key)
    if cid is None:
        return f"GPU wins at no size tried ({setting})"
    return f"GPU wins at {cid} and above ({setting})"


def compare_figure(doc: dict):
    """Time per size, CPU vs GPU, kernel only and whole call (IQR error bars); each crossover
    drawn as a vertical line and said in words."""
    plt = pyplot()
    n = len(doc["ops"])
    fig, axes = plt.subplots(n, 1, figsize=(11, 4.8 * n), squeeze=False)
    for ax, res in zip(axes[:, 0], doc["ops"]):
        op = res["op"]
        rows = res["rows"]
        ids = [r["case_id"] for r in rows]
        any_noisy = False
        for key, label, color, style in (("cpu_kernel", f"CPU {res['cpu']}, kernel only", "C0", "-"),
                                         ("cpu_call", f"CPU {res['cpu']}, whole call", "C0", ":"),
                                         ("gpu_kernel", f"GPU {res['gpu']}, data on the GPU", "C3", "-"),
                                         ("gpu_call", f"GPU {res['gpu']}, copies counted", "C3", ":")):
            pts = [(i, r) for i, r in enumerate(rows) if r.get(f"{key}_s")]
            if not pts:
                continue
            y = [r[f"{key}_s"] for _, r in pts]
            lo = [yy - r.get(f"{key}_q25_s", yy) for yy, (_, r) in zip(y, pts)]
            hi = [r.get(f"{key}_q75_s", yy) - yy for yy, (_, r) in zip(y, pts)]
            ax.errorbar([i for i, _ in pts], y, yerr=[lo, hi], color=color, linestyle=style,
                        marker="o" if key.endswith("kernel") else "s", capsize=3, label=label)
            noisy = [(i, r[f"{key}_s"]) for i, r in pts if is_noisy(r, key)]
            if noisy:
                any_noisy = True
                ax.plot([p[0] for p in noisy], [p[1] for p in noisy], linestyle="none", marker="o", markersize=13,
                        markerfacecolor="none", markeredgecolor="red", zorder=5)
        words = []
        handles_extra = []
        for key, style in (("crossover_on_device", "-"), ("crossover_with_copies", ":")):
            text = crossover_words(res, key)
            if text is None:
                continue
            words.append(text)
            if res.get(key) in ids:
                x = ids.index(res[key])
                ax.axvline(x, color="green", linestyle=style, linewidth=1.5, label=text)
                r = rows[x]
                t = r.get("gpu_call_s" if key.endswith("copies") else "gpu_kernel_s")
                if t:
                    ax.plot([x], [t], marker="*", markersize=16, color="green", linestyle="none", zorder=6)
                    ax.annotate(text, (x, t), xytext=(8, 10 if key.endswith("copies") else -16),
                                textcoords="offset points", fontsize=8, color="green")
        ax.set_xticks(range(len(ids)))
        ax.set_xticklabels([SPECS[op].tick_label(r["case"]) for r in rows], rotation=20, ha="right", fontsize=8)
        if any_noisy:
            from matplotlib.lines import Line2D
            handles_extra.append(Line2D([], [], linestyle="none", marker="o", markersize=11, markerfacecolor="none",
                                        markeredgecolor="red",
                                        label=f"noisy: IQR above {100 * NOISY_IQR_REL:.0f}% of the median"))
        ax.set_yscale("log")
        _readable_log_axis(ax.yaxis, _time_tick)
        ax.set_ylabel("median time per call (lower is better)")
        ax.set_xlabel(SPECS[op].x_label)
        gpu = f" vs the {_device_words(doc, 'gpu')}" if res["gpu"] else ""
        title = f"{op}, {doc['dtype']}: the {_device_words(doc, 'cpu')}{gpu}, error bars = IQR"
        if res["gpu"]:
            title += "".join("\n" + w for w in words)
        else:
            title += "\nno GPU column (why: below the plot)"
        ax.set_title(_wrap(title, 110), fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
        _legend_outside(ax, ax.get_legend_handles_labels()[0] + handles_extra)
    fig.tight_layout()
    no_gpu = list(dict.fromkeys(res["gpu_reason"] for res in doc["ops"] if not res["gpu"]))
    _add_caption(fig, _caption(doc, "kernel only = run() on data already in place; whole call = validation + "
                                    "copies + launch + copy back, on the host clock."
                               + "".join(f" No GPU column because: {why}" for why in no_gpu)))
    return fig


def plot_compare(doc: dict, path: str) -> None:
    _save(compare_figure(doc), path)

"""Plots a person reads without the table, checked through matplotlib's own objects: axis
labels with units, what/where/when in the title or caption, IQR error bars, the measured
ceiling (and a GPU's datasheet peak) as lines, plain tick labels, titles that fit, categorical
conv2d layers with skipped points marked, and the crossover drawn and said in words."""
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pykern import benchmark as bench  # noqa: E402
from pykern.ops.conv2d import RESNET_LAYERS, layer_case  # noqa: E402

ENV = {"date": "2026-12-02T21:00:00+00:00", "package_version": "0.1.0", "git_commit": "abcdef1234567",
       "cpu": {"model": "Test CPU", "cores": 2, "usable_cores": 2},
       "gpu": {"name": "NVIDIA H100 80GB HBM3", "multiprocessors": 132}, "gpu_reason": None,
       "settings": []}


def rec(op, key, device, case, rate, *, status="ok", kind="variant", flags=(), dtype="float32"):
    w = bench.work(op, case, dtype) / 1e9
    r = {"op": op, "key": key, "kind": kind, "device": device, "dtype": dtype, "case": case,
         "case_id": bench.SPECS[op].case_id(case), "status": status, "unit": bench.SPECS[op].rate_unit,
         "rate": rate, "flags": list(flags)}
    if rate:
        r.update(median_s=w / rate, q25_s=w / rate * 0.9, q75_s=w / rate * 1.2)
    return r


def bench_doc():
    layers = [layer_case(1, *layer) for layer in RESNET_LAYERS[:3]]
    entries = []
    for i, case in enumerate(layers):
        entries.append(rec("conv2d", "numpy/im2col_gemm", "cpu", case, 20.0 + i))
        entries.append(rec("conv2d", "numpy/winograd_4x4", "cpu", case, None if i == 1 else 30.0,
                           status="skipped" if i == 1 else "ok"))
        entries.append(rec("conv2d", "baseline/torch-cpu", "cpu", case, 25.0, kind="baseline"))
    for n in (128, 256, 512):
        case = {"M": n, "N": n, "K": n}
        entries.append(rec("matmul", "cuda/smem_tiled", "gpu", case, 1000.0 * n / 128, flags=["noisy"]))
    return {"env": ENV, "entries": entries, "load": bench.load_summary(0.5),
            "ceilings": {"cpu:compute:float32": {"rate": 90.0, "how": "np.matmul 2048^3 float32 (BLAS sgemm); fastest"},
                         "gpu:compute:float32": {"rate": 50000.0, "how": "cuBLAS GEMM 8192^3 float32; fastest"}}}


def compare_doc(gpu=True):
    rows = []
    for i, n in enumerate((64, 128, 256, 512)):
        r = {"case": {"M": n, "N": n, "K": n}, "case_id": f"{n}x{n}x{n}",
             "cpu_kernel_s": 1e-5 * 8 ** i, "cpu_call_s": 1.1e-5 * 8 ** i}
        if gpu:
            r.update(gpu_kernel_s=1e-4 * 2 ** i, gpu_call_s=5e-4 * 2 ** i)
        for k in ("cpu_kernel", "cpu_call", "gpu_kernel", "gpu_call"):
            if k + "_s" in r:
                r[k + "_q25_s"], r[k + "_q75_s"] = 0.9 * r[k + "_s"], 1.1 * r[k + "_s"]
        rows.append(r)
    res = {"op": "matmul", "cpu": "numpy/blas", "gpu": "cuda/smem_tiled" if gpu else None,
           "gpu_reason": "no CUDA GPU usable: cudaErrorNoDevice: no CUDA-capable device is detected",
           "rows": rows}
    if gpu:
        res["crossover_on_device"] = bench.crossover([r["case_id"] for r in rows],
                                                     [r["cpu_kernel_s"] for r in rows], [r["gpu_kernel_s"] for r in rows])
        res["crossover_with_copies"] = bench.crossover([r["case_id"] for r in rows],
                                                       [r["cpu_call_s"] for r in rows], [r["gpu_call_s"] for r in rows])
    return {"env": ENV, "dtype": "float32", "ops": [res], "load": bench.load_summary(0.0)}


def all_text(fig):
    return " ".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))


def check_readable(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    fig_box = fig.bbox
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel()
        title = ax.title
        box = title.get_window_extent(renderer)
        assert box.x0 >= fig_box.x0 - 1 and box.x1 <= fig_box.x1 + 1, title.get_text()  # never cut off
        for tick in ax.get_yticklabels() + ax.get_xticklabels():
            text = tick.get_text()
            assert "times" not in text and "$" not in text and "^{" not in text, text


def test_bench_figure_says_what_where_when_with_units_and_error_bars():
    fig = bench.bench_figure(bench_doc())
    try:
        check_readable(fig)
        conv, mm = fig.axes[0], fig.axes[1]
        assert conv.get_ylabel() == "kernel rate (GFLOP/s, higher is better)"
        assert "of the kernel alone" in conv.get_title()  # pk.<op> call times are the table's
        assert "ResNet layer" in conv.get_xlabel() and "matrix size" in mm.get_xlabel()
        assert "float32" in conv.get_title() and "Test CPU (2 cores)" in conv.get_title()
        assert "H100" in mm.get_title() and "132 SMs" in mm.get_title()
        text = all_text(fig)
        assert "2026-12-02 21:00 UTC" in text and "abcdef1234" in text
        assert "the machine was busy" in text
        # IQR as error bars
        assert any(isinstance(c, matplotlib.container.ErrorbarContainer) for c in conv.containers)
        # the measured ceiling as a horizontal line, and the GPU's datasheet peak
        labels = [ln.get_label() for ln in conv.get_lines()]
        assert any(lab.startswith("measured ceiling 90 GFLOP/s") for lab in labels)
        mm_labels = [ln.get_label() for ln in mm.get_lines()]
        assert any(lab.startswith("measured ceiling 50,000 GFLOP/s") for lab in mm_labels)
        assert any(lab.startswith("datasheet peak 67,000 GFLOP/s") for lab in mm_labels)
        assert "suspect timing" in " ".join(t.get_text() for t in mm.get_legend().get_texts())
    finally:
        plt.close(fig)


def test_conv2d_panel_is_categorical_and_marks_skipped_points():
    fig = bench.bench_figure(bench_doc())
    try:
        conv = fig.axes[0]
        ticks = [t.get_text() for t in conv.get_xticklabels()]
        assert ticks[0].startswith("56x56 C64>K64") and len(ticks) == 3
        for c in conv.containers:  # no line joins two unrelated layers
            assert c.lines[0].get_linestyle() == "None"
        crosses = [ln for ln in conv.get_lines() if ln.get_marker() == "x"]
        assert len(crosses) == 1 and list(crosses[0].get_xdata()) != []  # the skipped winograd_4x4 point
        legend = " ".join(t.get_text() for t in conv.get_legend().get_texts())
        assert "not run" in legend
        mm = fig.axes[1]  # sizes of one sweep are joined by a line
        assert any(c.lines[0].get_linestyle() == "-" for c in mm.containers)
    finally:
        plt.close(fig)


def test_compare_figure_draws_the_crossover_and_says_it():
    doc = compare_doc()
    res = doc["ops"][0]
    assert res["crossover_with_copies"] == "512x512x512" and res["crossover_on_device"] == "256x256x256"
    fig = bench.compare_figure(doc)
    try:
        check_readable(fig)
        ax = fig.axes[0]
        assert "time per call" in ax.get_ylabel()
        assert "GPU wins at 512x512x512 and above (copies counted)" in ax.get_title()
        assert "GPU wins at 256x256x256 and above (data already on the GPU)" in ax.get_title()
        vlines = [ln for ln in ax.get_lines() if ln.get_label().startswith("GPU wins")]
        assert sorted(ln.get_xdata()[0] for ln in vlines) == [2, 3]
        stars = [ln for ln in ax.get_lines() if ln.get_marker() == "*"]
        assert len(stars) == 2
        assert any(isinstance(c, matplotlib.container.ErrorbarContainer) for c in ax.containers)
        ticks = [t.get_text() for t in ax.get_yticklabels()]
        assert any(t.endswith(" µs") for t in ticks) and not any(t.endswith(" us") for t in ticks), ticks
    finally:
        plt.close(fig)


def test_the_compare_legend_covers_no_point():
    fig = bench.compare_figure(compare_doc())
    try:
        fig.canvas.draw()
        ax = fig.axes[0]
        legend = ax.get_legend().get_window_extent()
        assert legend.x0 >= ax.get_window_extent().x1  # beside the axes, where no point is drawn
    finally:
        plt.close(fig)


def test_targets_at_one_size_stand_side_by_side_on_every_panel():
    """One matmul size: three targets of one rate at one x would hide each other; every panel
    dodges them the way the conv2d layers are dodged."""
    case = {"M": 256, "N": 256, "K": 256}
    keys = ("cuda/naive", "cuda/smem_tiled", "baseline/cupy")
    entries = [rec("matmul", key, "gpu", case, 500.0, kind="baseline" if key.startswith("baseline") else "variant")
               for key in keys]
    conv = layer_case(1, *RESNET_LAYERS[0])
    entries += [rec("conv2d", key, "cpu", conv, 20.0) for key in ("numpy/im2col_gemm", "numpy/winograd_4x4", "x/y")]
    doc = dict(bench_doc(), entries=entries)
    fig = bench.bench_figure(doc)
    try:
        xs = [[c.lines[0].get_xdata()[0] for c in ax.containers] for ax in fig.axes]
        assert all(len(set(x)) == 3 for x in xs), xs
        assert xs[0] == pytest.approx(xs[1])  # one rule for every op
    finally:
        plt.close(fig)


def test_compare_figure_circles_noisy_times():
    doc = compare_doc()
    doc["ops"][0]["rows"][1]["cpu_call_iqr_rel"] = 0.4
    fig = bench.compare_figure(doc)
    try:
        ax = fig.axes[0]
        circles = [ln for ln in ax.get_lines() if ln.get_markeredgecolor() == "red"]
        assert len(circles) == 1 and list(circles[0].get_xdata()) == [1]
        assert "noisy" in " ".join(t.get_text() for t in ax.get_legend().get_texts())
    finally:
        plt.close(fig)


def test_compare_figure_without_a_gpu_keeps_the_reason_whole():
    fig = bench.compare_figure(compare_doc(gpu=False))
    try:
        check_readable(fig)
        assert "no GPU column (why: below the plot)" in fig.axes[0].get_title()
        assert "cudaErrorNoDevice: no CUDA-capable device is detected" in all_text(fig).replace("\n", " ")
    finally:
        plt.close(fig)


def test_plot_files_are_written(tmp_path):
    bench.plot_bench(bench_doc(), str(tmp_path / "b.png"))
    bench.plot_compare(compare_doc(), str(tmp_path / "c.png"))
    for name in ("b.png", "c.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"

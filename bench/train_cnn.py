"""Train a CNN on scikit-learn's handwritten digits, with torch's layers and with pykern's
(pykern.torch.nn), from the same initial weights, on the same batches.

    pip install ".[torch]"
    python bench/train_cnn.py                                  # torch + numpy (+ GPU rows on a GPU)
    python bench/train_cnn.py --backend torch numpy --epochs 8 --out /tmp/train_cnn.json
    python bench/train_cnn.py --model seed                     # the larger model, 48x48 RGB inputs
    python bench/train_cnn.py --amp                            # mixed precision, GPU rows only

Data: sklearn.datasets.load_digits (1,797 8x8 images, bundled with scikit-learn, no download),
upsampled (each pixel repeated: 2x2 to 16x16 for the small model, 6x6 to 48x48 for the seed
model, whose channel is repeated to 3), standardized with the training set's mean and std; a
stratified 80/20 train/test split with the seed.
Models (``--model``; the cheap small one is the default and CI's):
  small  conv 3x3 (1->16) - ReLU - maxpool 2 - conv 3x3 (16->32) - ReLU - maxpool 2 - linear
         (512->64) - ReLU - linear (64->10); batch 32
  seed   the issue's (19) seed model, where compute, not overhead, decides: conv 3x3 pad 1 with
         64, 128, 256 channels, each followed by maxpool 2 and ReLU, then linear (256*6*6 -> 512)
         - ReLU - linear (512 -> 10); 3x48x48 inputs, batch 64
Cross-entropy, SGD with momentum 0.9. Pooling and the loss stay torch's on every backend; the
convolutions, linear layers and ReLUs are pykern's on the pykern backends (the model swap is
one line per layer kind, see ``layers``).

Mixed precision (``--amp``, ``--amp-dtype float16|bfloat16``): every training step under
torch.autocast in that dtype, the loss scaled by torch.amp.GradScaler (float16; bfloat16 keeps
float32's range and needs no scaling), on the GPU rows only: torch's layers run their autocast
kernels, pykern's theirs (pykern.torch.ops: conv2d and linear on the 16-bit tensor-core rung,
relu in its input's dtype, the conv2d gradients in float32). The CPU rows cannot: pykern's CPU
kernels have no 16-bit conv2d or matmul, so a CPU pair has nothing to compare; they are refused
with that reason. The losses are compared with half precision's tolerance (pykern/_check.py's row
for the dtype) instead of float32's, the accuracy within the same 1 point.

Backends: ``torch`` (the reference, CPU), ``numpy`` (pykern on the CPU), and, where torch sees a
CUDA GPU, ``torch-cuda`` (torch's GPU reference), ``cuda`` and ``numba`` (pykern's GPU kernels).
The backends take turns epoch by epoch (a shared machine's changing load falls on all alike).
Each prints per-epoch time, images/s and test accuracy, then a summary (accuracy and time
relative to torch, agreement of the loss curves over the first steps) and where the time goes:
forward and backward per op, from torch.profiler over a few extra steps. Writes a JSON and a
plot (epoch time per backend, loss curves overlaid) next to it: by default a new dated file in
bench/results/<device>/ (see default_out), never over a committed record.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import json
import os
import platform
import re
import statistics
import sys
import time
from collections import defaultdict

import numpy as np

import pykern as pk  # the installed copy: main() refuses a source tree that was never built
from pykern.benchmark.environment import git_checkout
from pykern.cpu import _compiled

# torch.profiler's tracer (kineto) prints 'profiler_start'/'profiler_stop' lines on every profile
# unless told otherwise before torch loads it; the table below is this script's own report.
os.environ.setdefault("KINETO_LOG_LEVEL", "99")
try:  # without torch, --help still works and the script says what to install
    import pykern.torch as pkt
    import sklearn  # noqa: F401  (the data: load_digits)
    import torch
    import torch.nn.functional as F
    TORCH_MISSING = None
except ImportError as e:
    TORCH_MISSING = str(e)

HERE = os.path.dirname(os.path.abspath(__file__))
CPU_BACKENDS = ("torch", "numpy")
GPU_BACKENDS = ("torch-cuda", "cuda", "numba")
REFERENCE = {"torch": "torch", "numpy": "torch", "torch-cuda": "torch-cuda", "cuda": "torch-cuda",
             "numba": "torch-cuda"}
# The loss curves must agree over the first steps, |loss - loss_torch| <= LOSS_ATOL + LOSS_RTOL *
# loss_torch (float32 rounding differs between the libraries and grows as training goes on);
# test accuracy within ACCURACY_PP percentage points.
AGREE_STEPS = 20
LOSS_RTOL, LOSS_ATOL = 1e-3, 1e-5
ACCURACY_PP = 1.0
# Under --amp: each library rounds its layers' outputs to 16 bits, so the curves may drift apart
# sooner; half precision's (rtol, atol) per dtype, pykern/_check.py's. Not yet measured on a GPU.
AMP_DTYPES = ("float16", "bfloat16")
# What runs in autocast's dtype on a pykern backend (its conv2d gradients run in float32).
AMP_OPS = ("conv2d", "matmul", "relu", "relu_backward")


# --- data and model ------------------------------------------------------------------------------
# Each model's input and its defaults: channels of the input, image side (a multiple of 8, the
# digits' side, and of 2 ** pools), batch size, learning rate. The seed model's 256*6*6 implies
# 48x48 inputs: three 2x2 pools from 48 leave 6.
MODELS = {
    "small": {"channels": 1, "size": 16, "batch": 32, "lr": 0.02, "pools": 2},
    "seed": {"channels": 3, "size": 48, "batch": 64, "lr": 0.01, "pools": 3},
}


def load_data(seed: int, size: int = 16, test_fraction: float = 0.2, channels: int = 1):
    """(x_train, y_train, x_test, y_test): x: (N, channels, size, size) float32, standardized (the
    one channel repeated); y: (N,) int64."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    rep = size // 8
    x = digits.images.astype(np.float32).repeat(rep, axis=1).repeat(rep, axis=2)[:, None]  # (1797, 1, size, size)
    x = np.ascontiguousarray(x.repeat(channels, axis=1))  # (1797, channels, size, size)
    x_tr, x_te, y_tr, y_te = train_test_split(x, digits.target.astype(np.int64), test_size=test_fraction,
                                              random_state=seed, stratify=digits.target)
    mean, std = x_tr.mean(), x_tr.std()
    return (x_tr - mean) / std, y_tr, (x_te - mean) / std, y_te


def layers(backend: str):
    """(Conv2d, Linear, ReLU) classes for ``backend``: torch's own, or pykern's with its backend."""
    if backend.startswith("torch"):
        return torch.nn.Conv2d, torch.nn.Linear, torch.nn.ReLU

    def bind(cls):
        return lambda *a, **k: cls(*a, backend=backend, **k)
    return bind(pkt.nn.Conv2d), bind(pkt.nn.Linear), bind(pkt.nn.ReLU)


def build_model(backend: str, size: int = 16, model: str = "small") -> torch.nn.Sequential:
    """``model`` (see MODELS) on ``size`` x ``size`` inputs with ``backend``'s layers."""
    Conv2d, Linear, ReLU = layers(backend)
    if model == "small":
        flat = 32 * (size // 4) ** 2
        return torch.nn.Sequential(
            Conv2d(1, 16, 3, padding=1), ReLU(), torch.nn.MaxPool2d(2),
            Conv2d(16, 32, 3, padding=1), ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), Linear(flat, 64), ReLU(), Linear(64, 10))
    if model == "seed":
        blocks, c_in = [], MODELS["seed"]["channels"]
        for c_out in (64, 128, 256):
            blocks += [Conv2d(c_in, c_out, 3, padding=1), torch.nn.MaxPool2d(2), ReLU()]
            c_in = c_out
        flat = 256 * (size // 8) ** 2  # 256 * 6 * 6 at 48x48
        return torch.nn.Sequential(*blocks, torch.nn.Flatten(), Linear(flat, 512), ReLU(), Linear(512, 10))
    raise ValueError(f"model: expected one of {', '.join(MODELS)}, got {model!r}")


def initial_state(seed: int, size: int = 16, model: str = "small") -> dict:
    """torch's default initialization under ``seed``; every backend starts from these weights."""
    torch.manual_seed(seed)
    return copy.deepcopy(build_model("torch", size, model).state_dict())


def device_of(backend: str) -> str:
    return "cuda" if backend in GPU_BACKENDS else "cpu"


def batches(n: int, batch: int, seed: int, epoch: int):
    """The same shuffled mini-batches (index arrays) for every backend."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return [order[i:i + batch] for i in range(0, n, batch)]


class Amp:
    """Mixed precision for the training steps: torch.autocast on ``device_type`` tensors in
    ``dtype`` (a name in AMP_DTYPES), the loss scaled by a GradScaler (float16 only: bfloat16 has
    float32's exponent range, so its gradients do not underflow)."""

    def __init__(self, device_type: str, dtype: str, init_scale: float = 2.0 ** 16):
        self.device_type, self.dtype = device_type, getattr(torch, dtype)
        self.scaler = torch.amp.GradScaler(device_type, init_scale=init_scale, enabled=dtype == "float16")

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype)

    def fresh(self) -> Amp:
        """An Amp at this one's current loss scale (for a copy of the model that trains on)."""
        scale = self.scaler.get_scale() if self.scaler.is_enabled() else 2.0 ** 16
        return Amp(self.device_type, str(self.dtype).removeprefix("torch."), scale)


def train_step(model, opt, x, y, amp: Amp | None = None) -> float:
    opt.zero_grad(set_to_none=True)
    if amp is None:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    with amp.autocast():  # the forward and the loss; backward runs in the dtypes the forward chose
        loss = F.cross_entropy(model(x), y)
    amp.scaler.scale(loss).backward()
    amp.scaler.step(opt)  # unscales the gradients; skips the step if one is inf or NaN
    amp.scaler.update()
    return loss.item()


def accuracy(model, x, y, batch: int = 512, amp: Amp | None = None) -> float:
    with torch.no_grad(), amp.autocast() if amp else contextlib.nullcontext():
        hits = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    return 100.0 * hits / len(x)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


# --- one run -------------------------------------------------------------------------------------
class Run:
    """One backend's model, optimizer and data, trained an epoch at a time."""

    def __init__(self, backend: str, data, state: dict, args):
        self.backend, self.device, self.args = backend, device_of(backend), args
        self.x_tr, self.y_tr, self.x_te, self.y_te = (torch.from_numpy(a).to(self.device) for a in data)
        self.model = build_model(backend, args.size, args.model).to(self.device)
        self.model.load_state_dict(state)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=args.lr, momentum=args.momentum)
        self.amp = Amp(self.device, args.amp_dtype) if args.amp else None
        self.epochs, self.losses = [], []

    def epoch(self, epoch: int, progress: bool) -> None:
        args, model = self.args, self.model
        steps = batches(len(self.x_tr), args.batch, args.seed, epoch)
        bar = _progress(steps, f"{self.backend:>10} epoch {epoch + 1}/{args.epochs}") if progress else steps
        model.train()
        sync(self.device)
        t0 = time.perf_counter()
        losses = []
        for idx in bar:
            ix = torch.from_numpy(idx).to(self.device)
            losses.append(train_step(model, self.opt, self.x_tr[ix], self.y_tr[ix], self.amp))
            if progress:
                bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
        sync(self.device)
        seconds = time.perf_counter() - t0
        self.losses += losses
        model.eval()
        acc = accuracy(model, self.x_te, self.y_te, amp=self.amp)
        n = len(self.x_tr)
        self.epochs.append({"epoch": epoch + 1, "time_s": seconds, "images_per_s": n / seconds,
                            "train_loss": float(np.mean(losses)), "test_accuracy": acc})
        print(f"{self.backend:>10}  epoch {epoch + 1:2d}/{args.epochs}  {seconds:7.3f} s  {n / seconds:8.0f} img/s  "
              f"loss {self.epochs[-1]['train_loss']:.4f}  test accuracy {acc:6.2f}%", flush=True)

    def result(self) -> dict:
        # The first epoch pays for one-time work (threads, JIT, caches): the median is the figure.
        timed = statistics.median([e["time_s"] for e in self.epochs[1:]] or [self.epochs[0]["time_s"]])
        return {"device": self.device, "epochs": self.epochs, "step_losses": self.losses,
                "test_accuracy": self.epochs[-1]["test_accuracy"], "median_epoch_s": timed,
                "images_per_s": len(self.x_tr) / timed,
                "profile": profile(self.model, self.opt, self.x_tr, self.y_tr, self.args, self.device,
                                   self.amp and self.amp.fresh())}


def _progress(steps, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:  # no progress bar, then
        return _Quiet(steps)
    return tqdm(steps, desc=desc, leave=False, file=sys.stderr, unit="batch")


class _Quiet(list):
    def set_postfix(self, **_):
        pass


def train(backends: list, data, state: dict, args, progress: bool = True) -> dict:
    """Train every backend's model, the backends taking turns epoch by epoch, so that a change in
    the machine's load (it is shared) falls on all of them alike."""
    runs = {b: Run(b, data, state, args) for b in backends}
    for epoch in range(args.epochs):
        for r in runs.values():
            r.epoch(epoch, progress)
    return {b: r.result() for b, r in runs.items()}


# --- where the time goes -------------------------------------------------------------------------
# torch.profiler event -> (op, phase). Forward: the op's own top-level event; backward: the
# autograd engine's event for the op's gradient node (all of the op's gradients).
_BWD = "autograd::engine::evaluate_function: "
PROFILE_OPS = {
    "aten::conv2d": ("conv2d", "forward"), "pykern::conv2d": ("conv2d", "forward"),
    "aten::relu": ("relu", "forward"), "pykern::relu": ("relu", "forward"),
    "aten::linear": ("linear", "forward"), "pykern::matmul": ("linear", "forward"),
    "pykern::linear": ("linear", "forward"),  # pykern.torch's direct path: one node a Linear
    "aten::max_pool2d": ("max_pool2d (torch)", "forward"),
    "aten::cross_entropy_loss": ("cross_entropy (torch)", "forward"),
    _BWD + "ConvolutionBackward0": ("conv2d", "backward"),
    _BWD + "pykern_conv2dBackward": ("conv2d", "backward"),
    _BWD + "ReluBackward0": ("relu", "backward"),
    _BWD + "pykern_reluBackward": ("relu", "backward"),
    _BWD + "AddmmBackward0": ("linear", "backward"), _BWD + "TBackward0": ("linear", "backward"),
    _BWD + "pykern_matmulBackward": ("linear", "backward"), _BWD + "pykern_linearBackward": ("linear", "backward"),
    _BWD + "AddBackward0": ("linear", "backward"),  # pykern's linear adds the bias with torch
    _BWD + "MaxPool2DWithIndicesBackward0": ("max_pool2d (torch)", "backward"),
    _BWD + "ToCopyBackward0": ("autocast casts (torch)", "backward"),  # --amp: gradients back to float32
    _BWD + "LogSoftmaxBackward0": ("cross_entropy (torch)", "backward"),
    _BWD + "NllLossBackward0": ("cross_entropy (torch)", "backward"),
    "Optimizer.step#SGD.step": ("SGD step (torch)", "update"),
}


def profile(model, opt, x, y, args, device: str, amp: Amp | None = None) -> list:
    """ms per training step per (op, phase), over ``args.profile_steps`` steps of a copy of the
    model (profiling slows everything down, so the epochs above are timed without it)."""
    if args.profile_steps <= 0:
        return []
    from torch.profiler import ProfilerActivity, profile as torch_profile
    model, opt_state = copy.deepcopy(model), copy.deepcopy(opt.state_dict())
    opt = type(opt)(model.parameters(), **opt.defaults)
    opt.load_state_dict(opt_state)
    model.train()
    steps = batches(len(x), args.batch, args.seed, 10_000)[:args.profile_steps + 1]
    train_step(model, opt, x[torch.from_numpy(steps[0]).to(device)], y[torch.from_numpy(steps[0]).to(device)], amp)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        sync(device)
        t0 = time.perf_counter()
        for idx in steps[1:]:
            ix = torch.from_numpy(idx).to(device)
            train_step(model, opt, x[ix], y[ix], amp)
        sync(device)
        total_us = (time.perf_counter() - t0) * 1e6
    # On the GPU an op's CPU time is its launches; its kernels' time is the device time (CUPTI
    # charges each kernel to the op that launched it, pykern's own launches included).
    totals, device_totals = defaultdict(float), defaultdict(float)
    for ev in prof.events():
        label = PROFILE_OPS.get(ev.name)
        if label is None or _has_labelled_ancestor(ev):
            continue
        totals[label] += ev.cpu_time_total
        device_totals[label] += getattr(ev, "device_time_total", 0.0) if device == "cuda" else 0.0
    n = len(steps) - 1
    rows = [{"op": op, "phase": phase, "ms_per_step": us / n / 1e3, "share": us / total_us}
            | ({"gpu_ms_per_step": device_totals[(op, phase)] / n / 1e3} if device == "cuda" else {})
            for (op, phase), us in sorted(totals.items(), key=lambda kv: -kv[1])]
    rest = total_us - sum(totals.values())
    rows.append({"op": "other (Python, autograd, copies)", "phase": "", "ms_per_step": rest / n / 1e3,
                 "share": rest / total_us})
    return rows


def _has_labelled_ancestor(ev) -> bool:
    parent = ev.cpu_parent
    while parent is not None:
        if parent.name in PROFILE_OPS:
            return True
        parent = parent.cpu_parent
    return False


# --- report --------------------------------------------------------------------------------------
def loss_tolerance(amp_dtype=None) -> tuple:
    """(rtol, atol) of the loss curves' agreement: float32's, or under --amp half precision's."""
    if amp_dtype is None:
        return LOSS_RTOL, LOSS_ATOL
    from pykern._check import TOLERANCES
    return TOLERANCES[amp_dtype]


def compare(runs: dict, amp_dtype=None) -> dict:
    """Each pykern run against its torch reference on the same device (when that ran)."""
    rtol, atol = loss_tolerance(amp_dtype)
    out = {}
    for backend, r in runs.items():
        ref = runs.get(REFERENCE[backend])
        if ref is None or backend == REFERENCE[backend]:
            continue
        k = min(AGREE_STEPS, len(r["step_losses"]), len(ref["step_losses"]))
        got, want = np.array(r["step_losses"][:k]), np.array(ref["step_losses"][:k])
        diff = np.abs(got - want)
        out[backend] = {
            "reference": REFERENCE[backend],
            "accuracy_diff_pp": r["test_accuracy"] - ref["test_accuracy"],
            "accuracy_within_1pp": abs(r["test_accuracy"] - ref["test_accuracy"]) <= ACCURACY_PP,
            "steps_compared": k, "loss_max_abs_diff": float(diff.max()),
            "loss_curves_agree": bool(np.all(diff <= atol + rtol * np.abs(want))), "loss_rtol_atol": [rtol, atol],
            "time_ratio": r["median_epoch_s"] / ref["median_epoch_s"],
        }
    return out


def print_report(runs: dict, comparison: dict) -> None:
    print("\nbackend     device  median epoch   images/s   test acc   vs reference: acc     time   "
          f"loss, first {AGREE_STEPS} steps")
    for backend, r in runs.items():
        c = comparison.get(backend)
        tail = (f"{c['accuracy_diff_pp']:+6.2f} pp  {c['time_ratio']:6.2f}x   max |diff| {c['loss_max_abs_diff']:.1e} "
                f"({'agree' if c['loss_curves_agree'] else 'DIFFER'})" if c else "(reference)")
        print(f"{backend:<11} {r['device']:<6} {r['median_epoch_s']:10.3f} s {r['images_per_s']:10.0f}   "
              f"{r['test_accuracy']:6.2f}%   {tail}")
    for backend, r in runs.items():
        if not r["profile"]:
            continue
        gpu = r["device"] == "cuda"
        print(f"\nwhere the time goes, {backend} (torch.profiler, ms per training step)")
        print(f"  {'op':<34} {'phase':<9} {'ms/step':>8} {'share':>7}" + ("  GPU ms/step" if gpu else ""))
        for row in r["profile"]:
            print(f"  {row['op']:<34} {row['phase']:<9} {row['ms_per_step']:8.3f} {100 * row['share']:6.1f}%"
                  + (f"  {row.get('gpu_ms_per_step', 0.0):11.3f}" if gpu else ""))


def plot(runs: dict, path: str, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax_t, ax_l) = plt.subplots(1, 2, figsize=(12, 4.5))
    for backend, r in runs.items():
        ax_t.plot([e["epoch"] for e in r["epochs"]], [e["time_s"] for e in r["epochs"]], "o-", label=backend)
        style = "-" if backend.startswith("torch") else "--"
        ax_l.plot(np.arange(1, len(r["step_losses"]) + 1), r["step_losses"], style, lw=1, label=backend)
    ax_t.set(xlabel="epoch", ylabel="seconds", title="epoch time (training steps only)", ylim=(0, None))
    ax_l.set(xlabel="step", ylabel="cross-entropy", yscale="log", title="training loss per step")
    for ax in (ax_t, ax_l):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{title}: torch vs pykern, same initial weights and batches")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def environment() -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
           "pykern": pk.__version__, "machine": platform.machine(), "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "processor": platform.processor() or None,
           # whose threads ran pykern's threaded CPU kernels: "own", or torch's OpenMP runtime's name
           "pykern_cpu_pool": _compiled.pool(),
           # the commit run, and whether tracked files differed (bench/cpu_table.py groups runs by it)
           "checkout": git_checkout(HERE)}
    try:
        from threadpoolctl import threadpool_info
        env["blas"] = [{k: i.get(k) for k in ("internal_api", "version", "num_threads")} for i in threadpool_info()
                       if i.get("user_api") == "blas"]
    except ImportError:
        pass
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name()
    return env


def _fmt(load) -> str:
    return " ".join(f"{v:.1f}" for v in load)


# What a pykern backend must have to train: every op the model runs, forward and backward.
TRAINING_OPS = ("conv2d", "relu", "matmul", "conv2d_backward_input", "conv2d_backward_weight", "relu_backward")


def _no_amp_kernels(backend: str, amp_dtype: str) -> list:
    """The ops of AMP_OPS that pykern's ``backend`` has no ``amp_dtype`` kernel of."""
    return [op for op in AMP_OPS if not any(amp_dtype in v.dtypes for v in pk.variants(op, backend))]


def why_not(backend: str, amp_dtype=None):
    """None if ``backend`` can train here (in mixed precision with ``amp_dtype``), else the reason."""
    if amp_dtype is not None and device_of(backend) == "cpu":
        missing = _no_amp_kernels("numpy", amp_dtype)
        if missing:
            return (f"--amp trains on the GPU only: pykern's CPU kernels have no {amp_dtype} "
                    f"{', '.join(missing)}, so the CPU pair (torch and numpy) has nothing to compare")
    if device_of(backend) == "cuda" and not torch.cuda.is_available():
        return "torch sees no CUDA GPU (torch.cuda.is_available() is False)"
    if backend.startswith("torch") or backend not in pk.backends():
        return None
    if not pk.backends()[backend].available:
        return pk.backends()[backend].reason
    missing = [op for op in TRAINING_OPS if not pk.variants(op, backend)]
    if missing:
        return f"pykern has no {backend} variants of {', '.join(missing)}"
    missing = _no_amp_kernels(backend, amp_dtype) if amp_dtype is not None else []
    return f"--amp: pykern's {backend} backend has no {amp_dtype} {', '.join(missing)}" if missing else None


def available_backends(amp_dtype=None) -> list:
    found = []
    for backend in CPU_BACKENDS + (GPU_BACKENDS if torch.cuda.is_available() else ()):
        reason = why_not(backend, amp_dtype)
        if reason:
            print(f"skipping backend {backend}: {reason}")
        else:
            found.append(backend)
    return found


def default_out(gpu_name, now, model: str = "small", amp_dtype=None) -> str:
    """bench/results/<device>/train_cnn-<date>.json (train_cnn-<model>-<date>.json for a model other
    than the small one, -amp-<dtype> after the model under --amp), a new file each run: <device> is
    cpu, or the GPU's name as bench/device_run.sh writes it (lower case, runs of other characters as '-')."""
    device = "cpu" if gpu_name is None else re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-")
    stem = "train_cnn" if model == "small" else f"train_cnn-{model}"
    stem += f"-amp-{amp_dtype}" if amp_dtype else ""
    path = os.path.join(HERE, "results", device, f"{stem}-{now:%Y-%m-%d-%H%M%S}.json")
    stem, n = os.path.splitext(path)[0], 1
    while os.path.exists(path):  # two runs in one second: never replace a record
        n += 1
        path = f"{stem}-{n}.json"
    return path


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", nargs="+", choices=CPU_BACKENDS + GPU_BACKENDS,
                    help="default: torch and numpy, plus torch-cuda, cuda and numba where torch sees a GPU")
    ap.add_argument("--model", choices=tuple(MODELS), default="small",
                    help="small (default, CI's): two convolutions on 16x16; seed: issue 19's three "
                         "convolutions of 64-256 channels on 3x48x48 (see the docstring)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=None, help="default: the model's (small 32, seed 64)")
    ap.add_argument("--lr", type=float, default=None, help="default: the model's (small 0.02, seed 0.01)")
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=None, choices=(8, 16, 24, 32, 48),
                    help="image side after upsampling; default: the model's (small 16, seed 48)")
    ap.add_argument("--train-limit", type=int, default=0, help="use only this many training images (0: all)")
    ap.add_argument("--profile-steps", type=int, default=20, help="steps profiled per backend (0: no profile)")
    ap.add_argument("--threads", type=int, default=0, help="threads for torch and for NumPy's BLAS alike "
                    "(0: each library's default; 1 is steadier on a machine that other work keeps busy)")
    ap.add_argument("--out", default=None, help="JSON path (the plot goes next to it, .png); default: a new "
                    "dated file bench/results/<device>/train_cnn-<UTC date and time>.json, <device> being cpu, or "
                    "the GPU's name when GPU backends ran; an existing file is never replaced unless named here")
    ap.add_argument("--amp", action="store_true", help="mixed precision: torch.autocast + GradScaler, on the GPU "
                    "rows only (see the docstring)")
    ap.add_argument("--amp-dtype", choices=AMP_DTYPES, default="float16", help="autocast's dtype under --amp "
                    "(default float16, with GradScaler; bfloat16 needs no loss scaling)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    amp_dtype = args.amp_dtype if args.amp else None
    shape = MODELS[args.model]
    for key in ("batch", "lr", "size"):
        if getattr(args, key) is None:
            setattr(args, key, shape[key])
    if args.size % (2 ** shape["pools"]):
        ap.error(f"--size {args.size}: the {args.model} model pools {shape['pools']} times by 2, so the side must be "
                 f"a multiple of {2 ** shape['pools']}")
    from pykern._install import require_built
    require_built("train_cnn.py")  # never time a source tree's NumPy fallback
    if TORCH_MISSING:
        ap.exit(2, f"train_cnn.py needs torch and scikit-learn (pykern's [torch] extra, torch first): "
                   f"{TORCH_MISSING}\n")

    wanted = args.backend or available_backends(amp_dtype)
    for backend in wanted:
        if why_not(backend, amp_dtype):
            ap.error(f"backend {backend} cannot train here: {why_not(backend, amp_dtype)}")
    if not wanted:
        ap.error("no backend can train here" + (" in mixed precision (--amp needs a GPU)" if amp_dtype else "")
                 + ": the reasons are above")
    data = load_data(args.seed, args.size, channels=shape["channels"])  # first: scikit-learn loads SciPy's BLAS
    if args.threads:
        torch.set_num_threads(args.threads)
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads)  # BLAS and OpenMP pools, for the rest of the process
    if args.train_limit:
        data = (data[0][:args.train_limit], data[1][:args.train_limit]) + data[2:]
    print(f"{args.model} model; digits: {len(data[0])} train / {len(data[2])} test images, "
          f"{shape['channels']}x{args.size}x{args.size}; batch {args.batch}, "
          f"{args.epochs} epochs, SGD lr {args.lr} momentum {args.momentum}, seed {args.seed}; "
          + (f"mixed precision: autocast to {amp_dtype}" + (" with GradScaler; " if amp_dtype == "float16" else "; ")
             if amp_dtype else "")
          + f"torch {torch.__version__} with {torch.get_num_threads()} threads")
    state = initial_state(args.seed, args.size, args.model)
    load_before = os.getloadavg()
    runs = train(wanted, data, state, args, progress=not args.no_progress)
    load = {"before": load_before, "after": os.getloadavg()}
    comparison = compare(runs, amp_dtype)
    print_report(runs, comparison)
    print(f"\nload average (1, 5, 15 min) before {_fmt(load['before'])}, after {_fmt(load['after'])} on "
          f"{os.cpu_count()} CPUs: other processes' work slows every backend")

    gpu_ran = any(r["device"] == "cuda" for r in runs.values())
    now = datetime.datetime.now(datetime.timezone.utc)
    out = args.out or default_out(torch.cuda.get_device_name() if gpu_ran else None, now, args.model, amp_dtype)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    command = "python bench/train_cnn.py " + " ".join(argv if argv is not None else sys.argv[1:])
    config = vars(args) | {"backends": wanted, "train_images": len(data[0]), "test_images": len(data[2])}
    result = {"experiment": "train_cnn", "command": command,
              "date": now.isoformat(timespec="seconds"),
              "environment": environment() | {"load_average": load}, "config": config,
              "runs": runs, "comparison": comparison}
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    png = os.path.splitext(out)[0] + ".png"
    plot(runs, png, f"{args.model} CNN on sklearn digits ({shape['channels']}x{args.size}x{args.size})"
                    + (f", autocast {amp_dtype}" if amp_dtype else ""))
    print(f"\nwrote {out} and {png}")
    return result


if __name__ == "__main__":
    main()

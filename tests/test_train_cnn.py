"""bench/train_cnn.py, fast: two SGD steps of the digits CNN with pykern's layers against torch's
(same weights, same batches), and the script end to end on a few images. The full experiment is
not a test. Needs torch and scikit-learn (``pip install ".[torch]"``); skipped without them."""
import importlib.util
import json
import os
import sys

import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install '.[torch]')")
pytest.importorskip("sklearn", reason="scikit-learn not installed (pip install '.[torch]')")

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "train_cnn.py")


@pytest.fixture(scope="module")
def tc():
    path = list(sys.path)  # without an installed pykern the script puts the checkout on sys.path
    try:
        spec = importlib.util.spec_from_file_location("train_cnn", SCRIPT)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path[:] = path
    return mod


def test_data_is_the_digits_split(tc):
    x_tr, y_tr, x_te, y_te = tc.load_data(seed=0)
    assert x_tr.shape == (1437, 1, 16, 16) and x_te.shape == (360, 1, 16, 16)
    assert sorted(set(y_tr.tolist())) == list(range(10)) and len(y_te) == 360
    assert abs(float(x_tr.mean())) < 1e-4 and abs(float(x_tr.std()) - 1) < 1e-4
    # 2x2 upsampling: every pixel repeated
    assert (x_tr[:, :, ::2, ::2] == x_tr[:, :, 1::2, 1::2]).all() and x_tr.std(axis=(1, 2, 3)).min() > 0


def _steps_match_torch(tc, model, size, x, y, batch, steps):
    """``steps`` SGD steps of ``model`` with torch's layers and with pykern's on the CPU, from the
    same weights on the same batches: the losses, gradients and weights agree."""
    state = tc.initial_state(0, size, model)
    runs = {}
    for backend in ("torch", "numpy"):
        net = tc.build_model(backend, size, model)
        net.load_state_dict(state)
        assert list(net.state_dict()) == list(state)
        opt = torch.optim.SGD(net.parameters(), lr=tc.MODELS[model]["lr"], momentum=0.9)
        losses, grads = [], []
        for idx in tc.batches(len(x), batch, seed=0, epoch=0)[:steps]:
            losses.append(tc.train_step(net, opt, torch.from_numpy(x[idx]), torch.from_numpy(y[idx])))
            grads.append([p.grad.clone() for p in net.parameters()])
        runs[backend] = losses, grads, [p.detach().clone() for p in net.parameters()]
    (loss_t, grads_t, params_t), (loss_p, grads_p, params_p) = runs["torch"], runs["numpy"]
    torch.testing.assert_close(torch.tensor(loss_p), torch.tensor(loss_t), rtol=1e-5, atol=1e-6)
    for step in range(steps):
        for g_p, g_t in zip(grads_p[step], grads_t[step]):
            assert g_t.abs().max() > 0
            torch.testing.assert_close(g_p, g_t, rtol=1e-4, atol=1e-5 * float(g_t.abs().max()))
    for p_p, p_t in zip(params_p, params_t):
        torch.testing.assert_close(p_p, p_t, rtol=1e-5, atol=1e-6)
    return loss_t


def test_two_steps_match_torch(tc):
    x_tr, y_tr, _, _ = tc.load_data(seed=0)
    loss_t = _steps_match_torch(tc, "small", 16, x_tr, y_tr, batch=32, steps=2)
    assert loss_t[0] != loss_t[1]  # the first step changed the weights


def test_the_seed_model_lines_up_and_steps_like_torch(tc):
    """Issue 19's seed model on 3x48x48 digits: its layers' shapes, and one step at batch 2 (the
    full experiment, batch 64, is `--model seed`, not a test)."""
    x_tr, y_tr, _, _ = tc.load_data(seed=0, size=48, channels=3)
    assert x_tr.shape == (1437, 3, 48, 48) and (x_tr[:, 0] == x_tr[:, 2]).all()
    assert (x_tr[:, :, ::6, ::6] == x_tr[:, :, 5::6, 5::6]).all()  # each pixel repeated 6x6
    shapes = [tuple(v.shape) for k, v in tc.initial_state(0, 48, "seed").items() if k.endswith("weight")]
    assert shapes == [(64, 3, 3, 3), (128, 64, 3, 3), (256, 128, 3, 3), (512, 256 * 6 * 6), (10, 512)]
    _steps_match_torch(tc, "seed", 48, x_tr, y_tr, batch=2, steps=1)


def test_script_end_to_end(tc, tmp_path, capfd):
    pytest.importorskip("matplotlib", reason="matplotlib not installed (pip install '.[torch]'): the script plots")
    out = tmp_path / "train_cnn.json"
    result = tc.main(["--backend", "torch", "numpy", "--epochs", "2", "--train-limit", "96", "--profile-steps", "2",
                      "--no-progress", "--out", str(out)])
    printed, errors = capfd.readouterr()  # at the file descriptors: the profiler's C++ prints there
    assert "where the time goes, numpy" in printed and "test acc" in printed
    assert "profiler_start" not in printed + errors and "USDT" not in printed + errors, "profiler noise"
    saved = json.loads(out.read_text())
    assert saved["comparison"] == json.loads(json.dumps(result["comparison"]))
    assert set(saved["runs"]) == {"torch", "numpy"} and (tmp_path / "train_cnn.png").stat().st_size > 0
    numpy_run = saved["runs"]["numpy"]
    assert len(numpy_run["epochs"]) == 2 and len(numpy_run["step_losses"]) == 2 * 3
    assert saved["comparison"]["numpy"]["loss_curves_agree"]
    profiled = {(row["op"], row["phase"]) for row in numpy_run["profile"]}
    assert {("conv2d", "forward"), ("conv2d", "backward"), ("linear", "forward"), ("linear", "backward"),
            ("relu", "forward"), ("relu", "backward")} <= profiled


@pytest.mark.skipif(torch.cuda.is_available(), reason="torch sees a GPU here: the GPU rows run")
def test_gpu_backends_are_refused_with_the_reason_without_a_gpu(tc, capsys):
    with pytest.raises(SystemExit):
        tc.main(["--backend", "numba", "--epochs", "1"])
    assert "torch sees no CUDA GPU" in capsys.readouterr().err
    assert tc.available_backends() == ["torch", "numpy"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="torch sees a GPU here: --amp runs")
def test_amp_is_refused_with_the_reason_without_a_gpu(tc, capsys):
    """--amp runs on the GPU rows only: without a GPU nothing can, and each row says why."""
    with pytest.raises(SystemExit):
        tc.main(["--amp", "--epochs", "1"])
    printed, errors = capsys.readouterr()
    assert "no backend can train here in mixed precision (--amp needs a GPU)" in errors
    assert "skipping backend numpy: --amp trains on the GPU only: pykern's CPU kernels have no float16 conv2d, matmul" \
        in printed
    with pytest.raises(SystemExit):
        tc.main(["--amp", "--amp-dtype", "bfloat16", "--backend", "torch", "numpy", "--epochs", "1"])
    assert "backend torch cannot train here: --amp trains on the GPU only" in capsys.readouterr().err
    assert tc.why_not("numpy") is None and tc.why_not("cuda", "float16") == tc.why_not("cuda")


def test_an_amp_step_on_pykerns_cuda_backend_steps_like_torch(tc):
    """The script's mixed-precision step (autocast + GradScaler) on pykern's cuda backend, run on
    CPU tensors under torch.autocast("cpu", float16) (in the simulator without a GPU): two steps of
    the small model at 8x8, batch 4, against torch's layers under the same autocast, within
    float16's rtol (pykern/_check.py) times each gradient's largest |value| (no atol: a gradient's
    scale is its largest element, and these are 1e-2 to 1e-1; both compute in 16 bits, so only
    their accumulation orders differ: about half that is used). Against float32 only
    the losses: a 16-bit activation moves a max-pool's argmax where two inputs nearly tie, which
    sends part of a gradient elsewhere (torch's own autocast differs from its float32 by 6% of the
    first conv's gradient here, as pykern's does)."""
    pytest.importorskip("pykern.torch")
    import pykern as pk
    from pykern._check import TOLERANCES
    if not pk.backends()["cuda"].available:
        pytest.skip(f"backend 'cuda' unavailable: {pk.backends()['cuda'].reason}")
    x_tr, y_tr, _, _ = tc.load_data(seed=0, size=8)
    state = tc.initial_state(0, 8)
    runs = {}
    for backend, amp in (("cuda", True), ("torch", True), ("torch", False)):
        net = tc.build_model(backend, 8)
        net.load_state_dict(state)
        opt = torch.optim.SGD(net.parameters(), lr=tc.MODELS["small"]["lr"], momentum=0.9)
        step_amp = tc.Amp("cpu", "float16", init_scale=2.0 ** 10) if amp else None
        losses, grads = [], []
        for idx in tc.batches(len(x_tr), 4, seed=0, epoch=0)[:2]:
            losses.append(tc.train_step(net, opt, torch.from_numpy(x_tr[idx]), torch.from_numpy(y_tr[idx]), step_amp))
            grads.append([p.grad.clone() for p in net.parameters()])  # unscaled by scaler.step
        if amp:
            assert step_amp.scaler.get_scale() == 2.0 ** 10, "a step was skipped (an inf or NaN gradient)"
        runs[(backend, amp)] = losses, grads
    rtol, atol = TOLERANCES["float16"]
    (loss, grads), (ref_loss, ref_grads) = runs[("cuda", True)], runs[("torch", True)]
    for want in (ref_loss, runs[("torch", False)][0]):
        torch.testing.assert_close(torch.tensor(loss), torch.tensor(want), rtol=rtol, atol=atol)
    for step in range(2):
        for i, (g, r) in enumerate(zip(grads[step], ref_grads[step])):
            assert g.dtype == torch.float32 and r.abs().max() > 0
            assert (g - r).abs().max() <= rtol * r.abs().max(), f"step {step}, gradient {i}"
    assert loss[0] != loss[1]


def test_results_go_to_a_new_dated_file_per_device(tc, tmp_path, monkeypatch):
    """Run as the README shows, the script overwrote the committed bench/results/cpu/train_cnn.json."""
    import datetime
    monkeypatch.setattr(tc, "HERE", str(tmp_path))
    now = datetime.datetime(2026, 12, 7, 6, 30, 5, tzinfo=datetime.timezone.utc)
    first = tc.default_out(None, now)
    assert first == str(tmp_path / "results" / "cpu" / "train_cnn-2026-12-07-063005.json")
    os.makedirs(os.path.dirname(first))
    open(first, "w").close()
    assert tc.default_out(None, now) == str(tmp_path / "results" / "cpu" / "train_cnn-2026-12-07-063005-2.json")
    seed = tc.default_out(None, now, "seed")
    assert seed == str(tmp_path / "results" / "cpu" / "train_cnn-seed-2026-12-07-063005.json")
    assert tc.default_out(None, now, amp_dtype="float16") == str(
        tmp_path / "results" / "cpu" / "train_cnn-amp-float16-2026-12-07-063005.json")
    assert tc.default_out("NVIDIA H100 80GB HBM3", now).startswith(
        str(tmp_path / "results" / "nvidia-h100-80gb-hbm3" / "train_cnn-"))


def test_help_works_without_torch(tmp_path):
    """--help was a traceback at import without torch; a run says what to install."""
    import subprocess
    code = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = ['train_cnn.py'] + sys.argv[1:]; "
            f"runpy.run_path({SCRIPT!r}, run_name='__main__')")
    # From another folder: `python -c` in the checkout would import its source tree, never built.
    helped = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    assert helped.returncode == 0 and "usage:" in helped.stdout, helped.stderr
    ran = subprocess.run([sys.executable, "-c", code, "--epochs", "1"], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert ran.returncode == 2 and "needs torch and scikit-learn" in ran.stderr and "install" in ran.stderr

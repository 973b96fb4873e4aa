"""pykern.torch under torch.autocast (mixed precision): the autocast kernels of conv2d and matmul,
the dtypes they give against torch's own ops, the tensor-core rung they reach, the gradients of
16-bit calls, and a tiny model trained with autocast and GradScaler against torch.

The GPU path runs on CPU tensors here: torch.autocast("cpu", dtype=torch.float16) reaches the
AutocastCPU kernels, which are the AutocastCUDA ones bound to the other device, and backend="cuda"
sends the 16-bit arrays to pykern's (here simulated) device and back, as in
test_torch_adapter.py's GPU-backend tests. bfloat16 cannot take that path (a bfloat16 CPU tensor
has no NumPy dtype): it runs on a GPU only. Every value is checked with pykern's one tolerance
policy at float16's row (pykern/_check.py).
"""
import numpy as np
import pytest
from conftest import require_backend, seed_for

torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install '.[torch]')")
F = torch.nn.functional
pkt = pytest.importorskip("pykern.torch")

from pykern._check import TOLERANCES, compare  # noqa: E402
from pykern.torch import ops  # noqa: E402

HALF = torch.float16
AUTOCAST = dict(device_type="cpu", dtype=HALF)


def randn(*shape, seed, dtype=torch.float32, grad=False):
    """Seeded standard-normal values kept away from 0 (ReLU's kink, and 'unwritten' zeros)."""
    x = np.random.default_rng(seed_for(*shape, seed)).standard_normal(shape)
    x[np.abs(x) < 1e-2] = 0.5
    return torch.tensor(x, dtype=dtype, requires_grad=grad)


def f64(t):
    return t.detach().double()


def within_half_rule(got, ref, mag, what):
    """|got - ref| <= atol + rtol * mag at float16's (rtol, atol): ref in float64 on the same
    16-bit inputs, mag the op applied to their magnitudes (or a tensor's largest |ref|)."""
    ref = f64(ref).numpy()
    c = compare(f64(got).numpy(), ref, np.broadcast_to(np.asarray(f64(mag) if torch.is_tensor(mag) else mag),
                                                          ref.shape), "float16")
    assert c.ok, f"{what}: {c.message()}"


def normwise(got, ref, what):
    """|got - ref| <= rtol * max|ref| at float16's rtol: two 16-bit computations of one gradient,
    whose scale is its largest element (atol, meant for values of order 1, would hide most of a
    gradient of order 1e-2)."""
    rtol = TOLERANCES["float16"][0]
    err = float((f64(got) - f64(ref)).abs().max())
    assert err <= rtol * float(f64(ref).abs().max()), f"{what}: max |got - ref| {err:.3g} > {rtol:g} * max|ref|"


@pytest.fixture()
def cuda():
    require_backend("cuda")


def _stats_ext():
    """The simulator module, whose counters tell which rung ran; None on a real GPU."""
    from pykern._device import ext
    mod = ext()
    return mod if getattr(mod, "SIMULATOR", False) else None


# --- registration ------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["AutocastCPU", "AutocastCUDA"])
def test_conv2d_and_matmul_have_autocast_kernels_and_relu_none(key):
    """conv2d and matmul are on torch's lower_precision_fp list; relu is on no list: autocast
    passes it by (a fallthrough) and it runs in its input's dtype."""
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    assert has("pykern::conv2d", key) and has("pykern::matmul", key)
    assert not has("pykern::relu", key) and not has("pykern::relu_backward", key)


# --- dtypes, against torch's own ops under the same autocast ------------------------------------
def test_outputs_under_autocast_have_torchs_dtypes(cuda):
    x, w, b = randn(2, 2, 6, 6, seed="x"), randn(4, 2, 3, 3, seed="w"), randn(4, seed="b")
    a, lw, lb = randn(2, 3, 7, seed="a"), randn(5, 7, seed="lw"), randn(5, seed="lb")
    with torch.autocast(**AUTOCAST):
        pairs = {
            "conv2d": (pkt.conv2d(x, w, b, padding=1, backend="cuda"), F.conv2d(x, w, b, padding=1)),
            "conv2d, no bias, fused relu": (pkt.conv2d(x, w, activation="relu", backend="cuda"),
                                            F.relu(F.conv2d(x, w))),
            "linear": (pkt.linear(a, lw, lb, backend="cuda"), F.linear(a, lw, lb)),
            "matmul": (pkt.matmul(a[0], lw, transpose_b=True, backend="cuda"), a[0] @ lw.T),
            "relu of a float32 tensor": (pkt.relu(x, backend="cuda"), torch.relu(x)),
            "relu of a float16 tensor": (pkt.relu(x.half(), backend="cuda"), torch.relu(x.half())),
            # float64 is not eligible for autocast: it runs, and stays, float64 (on numpy here)
            "conv2d in float64": (pkt.conv2d(x.double(), w.double()), F.conv2d(x.double(), w.double())),
        }
    for what, (got, want) in pairs.items():
        assert got.dtype == want.dtype, f"{what}: {got.dtype}, torch gives {want.dtype}"
        assert got.shape == want.shape, what
    assert pairs["linear"][0].dtype == HALF and pairs["relu of a float32 tensor"][0].dtype == torch.float32


def test_autocast_runs_the_tensor_core_rung(cuda):
    """Under autocast the float32 inputs reach the 16-bit mma_sync rung (the simulator counts its
    ldmatrix loads; no float32 rung issues any), and the results are those of the rounded inputs."""
    mod = _stats_ext()
    if mod is None:
        pytest.skip("which rung ran is counted by the simulator only")
    x, w, b = randn(2, 2, 6, 6, seed="rx"), randn(4, 2, 3, 3, seed="rw"), randn(4, seed="rb")
    a, lw, lb = randn(5, 9, seed="ra"), randn(3, 9, seed="rlw"), randn(3, seed="rlb")
    calls = {"conv2d": lambda: pkt.conv2d(x, w, b, padding=1, backend="cuda"),
             "linear": lambda: pkt.linear(a, lw, lb, backend="cuda")}
    got = {}
    for what, call in calls.items():
        mod.sim_reset_stats()
        call()
        assert mod.sim_stats()["ldmatrix_matrices"] == 0, f"{what} in float32 ran a tensor-core rung"
        mod.sim_reset_stats()
        with torch.autocast(**AUTOCAST):
            got[what] = call()
        assert mod.sim_stats()["ldmatrix_matrices"] > 0, f"{what} under autocast did not reach mma_sync"
    x16, w16, b16, a16, lw16, lb16 = (f64(t.half()) for t in (x, w, b, a, lw, lb))  # what the kernels saw
    within_half_rule(got["conv2d"], F.conv2d(x16, w16, b16, padding=1),
                     F.conv2d(x16.abs(), w16.abs(), b16.abs(), padding=1), "conv2d")
    within_half_rule(got["linear"], F.linear(a16, lw16, lb16), F.linear(a16.abs(), lw16.abs(), lb16.abs()), "linear")


# --- gradients of 16-bit calls ------------------------------------------------------------------
def test_conv2d_gradients_of_16_bit_inputs(cuda):
    """No backend has a 16-bit conv2d backward: the gradients are computed in float32 from the
    upcast tensors and come back in each input's dtype, within float16's rule of the exact ones."""
    geo = dict(stride=(1, 2), padding=1)
    x, w, b = (randn(*s, seed=f"g{i}", dtype=HALF, grad=True) for i, s in enumerate([(2, 3, 7, 6), (4, 3, 3, 3), (4,)]))
    y = pkt.conv2d(x, w, b, activation="relu", backend="cuda", **geo)
    assert y.dtype == HALF and (y == 0).any() and (y > 0).any()
    dy = randn(*y.shape, seed="gdy", dtype=HALF)
    y.backward(dy)
    assert (x.grad.dtype, w.grad.dtype, b.grad.dtype) == (HALF, HALF, HALF)
    g = f64(dy) * (y > 0)  # the fused ReLU's gradient, exact
    x64, w64 = f64(x), f64(w)
    within_half_rule(x.grad, torch.nn.grad.conv2d_input(x.shape, w64, g, **geo),
                     torch.nn.grad.conv2d_input(x.shape, w64.abs(), g.abs(), **geo), "dx")
    within_half_rule(w.grad, torch.nn.grad.conv2d_weight(x64, w.shape, g, **geo),
                     torch.nn.grad.conv2d_weight(x64.abs(), w.shape, g.abs(), **geo), "dw")
    within_half_rule(b.grad, g.sum((0, 2, 3)), g.abs().sum((0, 2, 3)), "db")


def test_matmul_gradients_of_16_bit_inputs(cuda):
    """16-bit operands give a float32 product (pykern's rule outside autocast); the gradients run on
    the 16-bit rung too (dy rounded to float16) and come back in the operands' dtype."""
    a = randn(5, 9, seed="ma", dtype=HALF, grad=True)
    b = randn(3, 9, seed="mb", dtype=HALF, grad=True)
    c = pkt.matmul(a, b, transpose_b=True, backend="cuda")
    assert c.dtype == torch.float32
    dy = randn(5, 3, seed="mdy")
    c.backward(dy)
    assert (a.grad.dtype, b.grad.dtype) == (HALF, HALF)
    dy16, a64, b64 = f64(dy.half()), f64(a), f64(b)
    within_half_rule(a.grad, dy16 @ b64, dy16.abs() @ b64.abs(), "da")
    within_half_rule(b.grad, dy16.T @ a64, dy16.abs().T @ a64.abs(), "db")


# --- training under autocast with GradScaler ----------------------------------------------------
def _tiny(layers, **kw):
    return torch.nn.Sequential(layers.Conv2d(2, 4, 3, padding=1, **kw), layers.ReLU(**kw), torch.nn.Flatten(),
                               layers.Linear(4 * 6 * 6, 3, **kw))


INIT_SCALE = 2.0 ** 10  # small enough that no 16-bit gradient of this model overflows: no step skipped


def _train(net, state, x, y, amp, steps=2):
    """``steps`` SGD steps; per step the logits' dtype, the loss and the unscaled gradients."""
    net.load_state_dict(state)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=INIT_SCALE, enabled=amp)
    record = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(**AUTOCAST, enabled=amp):
            logits = net(x)
            loss = F.cross_entropy(logits, y)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        record.append((logits.dtype, loss.detach(), [p.grad.clone() for p in net.parameters()]))
        scaler.step(opt)
        scaler.update()
    if amp:
        assert scaler.get_scale() == INIT_SCALE, "GradScaler found an inf or NaN gradient and skipped a step"
    return record, [p.detach().clone() for p in net.parameters()]


def test_a_model_trains_under_autocast_and_gradscaler_like_torch(cuda):
    """A conv (2->4 channels, 6x6) - ReLU - linear model, two SGD steps under autocast with
    GradScaler on pykern's cuda backend, against the same model in float32 torch and under torch's
    own autocast: the logits are 16-bit as torch's; the losses, the (float32) gradients and the
    updated weights within float16's rule of float32 torch's (mag: each tensor's largest |value|;
    per-element magnitudes do not survive a network), and the gradients within float16's rtol of
    torch's autocast ones, normwise (the same roundings in the same places: a tighter check)."""
    torch.manual_seed(seed_for("amp model"))
    state = _tiny(torch.nn).state_dict()
    x, y = randn(5, 2, 6, 6, seed="amp x"), torch.tensor([0, 2, 1, 1, 0])
    on_cuda = dict(backend="cuda")
    layers = type("PykernLayers", (), {"Conv2d": staticmethod(lambda *a, **k: pkt.nn.Conv2d(*a, **k, **on_cuda)),
                                       "ReLU": staticmethod(lambda **k: pkt.nn.ReLU(**on_cuda)),
                                       "Linear": staticmethod(lambda *a, **k: pkt.nn.Linear(*a, **k, **on_cuda))})
    got, got_w = _train(_tiny(layers), state, x, y, amp=True)
    f32, f32_w = _train(_tiny(torch.nn), state, x, y, amp=False)
    amp, _ = _train(_tiny(torch.nn), state, x, y, amp=True)
    for step, ((dtype, loss, grads), (_, loss32, grads32), (torch_dtype, loss_amp, grads_amp)) in enumerate(
            zip(got, f32, amp)):
        assert dtype == torch_dtype == HALF, f"step {step}: logits {dtype}, torch's autocast gives {torch_dtype}"
        for ref, name in ((loss32, "float32 torch"), (loss_amp, "torch's autocast")):
            within_half_rule(loss, ref, loss32.abs(), f"step {step} loss vs {name}")
        for i, (g, g32, g_amp) in enumerate(zip(grads, grads32, grads_amp)):
            assert g.dtype == torch.float32 and g32.abs().max() > 0
            mag = g32.abs().max()
            within_half_rule(g, g32, mag, f"step {step} gradient {i} vs float32 torch")
            normwise(g, g_amp, f"step {step} gradient {i} vs torch's autocast")
    assert not torch.equal(got[0][1], got[1][1]), "the first step changed nothing"
    for i, (p, p32) in enumerate(zip(got_w, f32_w)):
        within_half_rule(p, p32, p32.abs().max(), f"weights {i} after the steps")


# --- refusals ----------------------------------------------------------------------------------
def test_autocast_refuses_what_pykern_cannot_run_with_the_reason():
    x, w = randn(1, 2, 5, 5, seed="nx"), randn(3, 2, 3, 3, seed="nw")
    a = randn(4, 5, seed="na")
    with torch.autocast(**AUTOCAST):
        with pytest.raises(TypeError, match=r"numpy backend has no float16 conv2d kernel; use backend='cuda'"):
            pkt.conv2d(x, w)
        with pytest.raises(TypeError, match=r"numpy backend has no float16 matmul kernel"):
            pkt.linear(a, a)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with pytest.raises(TypeError, match=r"bfloat16 CPU tensor has no NumPy dtype.*dtype=torch\.float16"):
            pkt.conv2d(x, w, backend="cuda")
        with pytest.raises(TypeError, match=r"autocast\('cpu', dtype=torch\.bfloat16\)"):
            pkt.matmul(a, a, transpose_b=True, backend="cuda")
        # nothing to cast, nothing refused: float64 runs as it is
        assert pkt.conv2d(x.double(), w.double()).dtype == torch.float64
    assert ops._autocast_refusal("conv2d", "cuda", torch.bfloat16, "cuda") is None
    assert "numba backend has no float16 conv2d" in ops._autocast_refusal("conv2d", "cuda", HALF, "numba")


# --- torch.compile -----------------------------------------------------------------------------
def test_torch_compile_traces_the_autocast_kernels(cuda):
    """fullgraph=True under autocast: the autocast kernels trace (a redispatch below autocast
    recursed under Dynamo's fake tensors), and the compiled step gives eager's outputs and gradients."""
    torch.manual_seed(seed_for("amp compile"))
    on_cuda = dict(backend="cuda")
    model = torch.nn.Sequential(pkt.nn.Conv2d(2, 4, 3, padding=1, **on_cuda), pkt.nn.ReLU(**on_cuda),
                                torch.nn.Flatten(), pkt.nn.Linear(4 * 6 * 6, 3, **on_cuda))
    x, y = randn(3, 2, 6, 6, seed="compile x"), torch.tensor([0, 2, 1])
    results = []
    torch._dynamo.reset()
    for run in (model, torch.compile(model, backend="aot_eager", fullgraph=True)):
        with torch.autocast(**AUTOCAST):
            logits = run(x)
            loss = F.cross_entropy(logits, y)
        grads = torch.autograd.grad(loss, list(model.parameters()))
        results.append((logits, grads))
    (eager, eager_grads), (compiled, compiled_grads) = results
    assert compiled.dtype == eager.dtype == HALF
    torch.testing.assert_close(compiled, eager, rtol=0, atol=0)  # the same kernels on the same inputs
    for g, r in zip(compiled_grads, eager_grads):
        assert g.dtype == torch.float32
        torch.testing.assert_close(g, r, rtol=0, atol=0)

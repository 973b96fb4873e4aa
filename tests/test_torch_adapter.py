"""pykern.torch: the custom operators against torch's own ops, gradcheck in float64, the
operators' registration (opcheck), the drop-in modules, and torch.compile.

Needs torch (``pip install ".[torch]"``); skipped without it. CUDA-tensor tests need a GPU and
are skipped with the reason here; the GPU backends' code paths are also run on CPU tensors in
pykern's simulators (pykern copies them to the simulated device and back).
"""
import contextlib
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from conftest import require_backend, seed_for

torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install '.[torch]')")
F = torch.nn.functional
pkt = pytest.importorskip("pykern.torch")

import pykern as pk  # noqa: E402

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA GPU for torch here: CUDA tensors cannot be made")


def randn(*shape, seed, dtype=torch.float64, grad=True, device="cpu"):
    """Seeded standard-normal values kept away from 0 (ReLU's kink, and 'unwritten' zeros)."""
    x = np.random.default_rng(seed_for(*shape, seed)).standard_normal(shape)
    x[np.abs(x) < 1e-2] = 0.5
    return torch.tensor(x, dtype=dtype, device=device, requires_grad=grad)


def close(got, want, dtype=torch.float64):
    tol = {torch.float64: (1e-10, 1e-10), torch.float32: (1e-5, 1e-5)}[dtype]
    torch.testing.assert_close(got, want, rtol=tol[0], atol=tol[1])


# Conv geometries: (x shape, w shape, keyword arguments), never tile or kernel multiples.
CONVS = [
    ((2, 3, 7, 6), (4, 3, 3, 3), dict(padding=1)),
    ((1, 2, 9, 8), (3, 2, 3, 3), dict(stride=2, padding=1)),
    ((1, 2, 8, 7), (2, 2, 2, 3), dict(dilation=2)),
    ((2, 4, 6, 5), (4, 2, 3, 3), dict(groups=2, padding=(1, 0), stride=(1, 2))),
    ((1, 3, 5, 5), (5, 3, 1, 1), dict()),
]


def _conv_case(i, dtype=torch.float64, bias=True, device="cpu"):
    xs, ws, kw = CONVS[i]
    b = randn(ws[0], seed=f"b{i}", dtype=dtype, device=device) if bias else None
    x, w = randn(*xs, seed=f"x{i}", dtype=dtype, device=device), randn(*ws, seed=f"w{i}", dtype=dtype, device=device)
    return x, w, b, kw


# --- import ---------------------------------------------------------------------------------
def test_import_pykern_does_not_import_torch():
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(pk.__file__)))
    code = "import sys, numpy as np, pykern as pk; pk.relu(np.ones(3) - 2); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=env, cwd=tempfile.gettempdir())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


# --- forward against torch ------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("i", range(len(CONVS)))
def test_conv2d_matches_torch(i, activation, dtype):
    x, w, b, kw = _conv_case(i, dtype, bias=i % 2 == 0)
    want = F.conv2d(x, w, b, **kw)
    got = pkt.conv2d(x, w, b, activation=activation, **kw)
    close(got, want.relu() if activation else want, dtype)
    assert got.dtype == dtype and got.is_contiguous()


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_matmul_flags_match_torch(ta, tb):
    a = randn(*((3, 5) if ta else (5, 3)), seed="a")
    b = randn(*((4, 3) if tb else (3, 4)), seed="b")
    got = pkt.matmul(a, b, transpose_a=ta, transpose_b=tb)
    close(got, (a.T if ta else a) @ (b.T if tb else b))


def test_linear_and_relu_match_torch():
    x, w, b = randn(2, 3, 7, seed="x"), randn(5, 7, seed="w"), randn(5, seed="b")
    close(pkt.linear(x, w, b), F.linear(x, w, b))  # (*, in): leading dimensions kept
    close(pkt.linear(x[0, 0], w), F.linear(x[0, 0], w))  # 1-D input, no bias
    close(pkt.relu(x), torch.relu(x))


def test_non_contiguous_inputs_are_made_contiguous():
    x, w, b, kw = _conv_case(0)
    xc = x.detach().to(memory_format=torch.channels_last)
    assert not xc.is_contiguous()
    close(pkt.conv2d(xc, w, b, **kw), F.conv2d(x, w, b, **kw))
    a = randn(6, 4, seed="a")
    close(pkt.matmul(a.T, a), a.T @ a)  # a.T is a transposed view
    close(pkt.relu(a.T), torch.relu(a.T))


def test_pykern_errors_reach_the_caller():
    x, w, _, _ = _conv_case(0)
    with pytest.raises(ValueError, match="C//groups"):
        pkt.conv2d(x, w[:, :2])
    with pytest.raises(ValueError, match="no variant 'nope'"):
        pkt.relu(x, variant="nope")
    a = randn(3, 4, seed="err")
    with pytest.raises(ValueError, match="no variant 'nope' on backend 'numpy'"):
        pkt.matmul(a, a, transpose_b=True, variant="nope")  # the flags' check leaves the refusal to pykern
    with pytest.raises(ValueError, match="unknown backend 'bogus'"):
        pkt.matmul(a, a, transpose_a=True, backend="bogus")
    with pytest.raises(TypeError, match=r"bfloat16 CPU tensor .* x.float\(\)"):
        pkt.relu(x.detach().bfloat16())


# --- gradients --------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("i", range(len(CONVS)))
def test_conv2d_gradcheck(i, activation):
    x, w, b, kw = _conv_case(i, bias=i != 2)
    args = (x, w) if b is None else (x, w, b)
    assert torch.autograd.gradcheck(lambda *t: pkt.conv2d(*t, activation=activation, **kw), args, fast_mode=i > 0)


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_matmul_gradcheck(ta, tb):
    a = randn(*((3, 5) if ta else (5, 3)), seed="ga")
    b = randn(*((4, 3) if tb else (3, 4)), seed="gb")
    assert torch.autograd.gradcheck(lambda a, b: pkt.matmul(a, b, transpose_a=ta, transpose_b=tb), (a, b))


def test_linear_and_relu_gradcheck():
    x, w, b = randn(2, 3, 4, seed="lx"), randn(5, 4, seed="lw"), randn(5, seed="lb")
    assert torch.autograd.gradcheck(lambda x, w, b: pkt.linear(x, w, b), (x, w, b))
    assert torch.autograd.gradcheck(lambda x: pkt.relu(x), (x,))
    assert torch.autograd.gradgradcheck(lambda x: pkt.relu(x), (x,))  # through relu_backward's autograd


@pytest.mark.parametrize("wrt", [0, 1, 2])
def test_any_one_tensor_input_makes_the_output_differentiable(wrt):
    """The Autograd kernel records a node when any tensor input (an optional bias included)
    requires a gradient, and only then; no_grad and inference_mode record none."""
    x, w, b, kw = _conv_case(0)
    args = [t.detach().requires_grad_(i == wrt) for i, t in enumerate((x, w, b))]
    y = pkt.conv2d(*args, **kw)
    assert y.requires_grad
    (got,) = torch.autograd.grad(y.square().sum(), args[wrt])
    ref = [t.detach().requires_grad_(i == wrt) for i, t in enumerate((x, w, b))]
    (want,) = torch.autograd.grad(F.conv2d(*ref, **kw).square().sum(), ref[wrt])
    close(got, want)
    assert not pkt.conv2d(*(t.detach() for t in args), **kw).requires_grad
    with torch.no_grad():
        assert not pkt.conv2d(*args, **kw).requires_grad
    with torch.inference_mode():
        assert not pkt.conv2d(*args, **kw).requires_grad


@pytest.mark.parametrize("i", [0, 3])
def test_conv2d_second_derivatives(i):
    """The backward ops are differentiable too (double backward: gradient penalties, Hessian-vector products)."""
    x, w, _, kw = _conv_case(i, bias=False)
    x = x[:1].detach().requires_grad_()
    assert torch.autograd.gradgradcheck(lambda x, w: pkt.conv2d(x, w, activation="relu", **kw), (x, w), fast_mode=True)


def test_gradients_match_torch_in_float32():
    x, w, b, kw = _conv_case(3, torch.float32)
    grads = []
    for conv in (pkt.conv2d, F.conv2d):
        y = conv(x, w, b, **kw)
        (y * torch.linspace(-1, 2, y.numel()).reshape(y.shape)).sum().backward()
        grads.append([t.grad.clone() for t in (x, w, b)])
        for t in (x, w, b):
            t.grad = None
    for got, want in zip(*grads):
        close(got, want, torch.float32)


class _PassThrough(torch.overrides.TorchFunctionMode):
    """A function mode that changes nothing: while it is active pykern.torch must go through
    torch's dispatcher (a mode may need to see every operator), not its direct path."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


def _direct_node(op: str):
    """The grad_fn class of ``torch.ops.pykern.<op>``'s direct path."""
    from pykern.torch import ops
    return ops._DIRECT[getattr(torch.ops.pykern, op).default][2]._backward_cls


def _small_model_step(x, params, activation):
    """conv2d (grouped, strided) -> relu -> linear, and the gradients of a weighted sum."""
    w, b, lw, lb = params
    h = pkt.relu(pkt.conv2d(x, w, b, stride=(1, 2), padding=(1, 0), groups=2, activation=activation))
    y = pkt.linear(h.flatten(1), lw, lb)
    out = (y * torch.linspace(-1, 2, y.numel(), dtype=y.dtype).reshape(y.shape)).sum()
    return [y] + list(torch.autograd.grad(out, (x, *params)))


def test_direct_path_is_taken_for_plain_tensors_and_left_under_a_mode():
    x = randn(3, 4, seed="d")
    assert type(pkt.relu(x).grad_fn) is _direct_node("relu")
    with _PassThrough():
        assert type(pkt.relu(x).grad_fn) is not _direct_node("relu")
        assert type(pkt.relu(x).grad_fn).__name__ == "pykern_reluBackward"  # the dispatcher's Function
    with torch.no_grad():
        assert pkt.relu(x).grad_fn is None


@pytest.mark.parametrize("activation", [None, "relu"])
def test_direct_path_and_dispatcher_agree_bit_for_bit(activation):
    """The same kernels either way: outputs, first and second derivatives equal exactly."""
    x = randn(2, 4, 6, 5, seed="dx")
    params = (randn(4, 2, 3, 3, seed="dw"), randn(4, seed="db"), randn(3, 4 * 6 * 2, seed="lw"), randn(3, seed="lb"))
    direct = _small_model_step(x, params, activation)
    with _PassThrough():
        dispatched = _small_model_step(x, params, activation)
    for got, want in zip(direct, dispatched):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    # second derivatives: the backward formulas take the direct path with create_graph too
    w = params[0]
    g = []
    for mode in (contextlib.nullcontext(), _PassThrough()):
        with mode:
            y = pkt.conv2d(x, w, activation=activation, padding=1, groups=2)
            (gw,) = torch.autograd.grad(y.pow(2).sum(), w, create_graph=True)
            g.append(torch.autograd.grad(gw.sum(), x)[0])
    torch.testing.assert_close(g[0], g[1], rtol=0, atol=0)


def test_a_profile_of_the_direct_path_names_the_operators():
    """Under torch.profiler the direct path records the dispatcher's event names and keeps the
    gradient nodes' (bench/train_cnn.py's table labels ops by them), and still runs direct."""
    from torch.profiler import ProfilerActivity, profile
    x, w = randn(4, 6, seed="px"), randn(3, 6, seed="pw")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        y = pkt.linear(pkt.relu(x), w)
        assert type(y.grad_fn).__name__ == "pykern_linearBackward"
        y.sum().backward()
    names = {ev.name for ev in prof.events()}
    assert {"pykern::relu", "pykern::linear"} <= names, sorted(n for n in names if "pykern" in n)
    assert any(n.endswith("pykern_reluBackward") for n in names)


def test_direct_linear_in_half_precision_matches_the_dispatcher():
    """16-bit linear outside autocast (the cuda backend's tensor-core rung, in the simulator here):
    float32 out, dy rounded to the operands' dtype for the backward, the bias's gradient from the
    float32 dy, on both paths alike."""
    require_backend("cuda")
    grads = []
    for mode in (contextlib.nullcontext(), _PassThrough()):
        x = randn(5, 16, seed="hx", dtype=torch.float16)
        w, b = randn(8, 16, seed="hw", dtype=torch.float16), randn(8, seed="hb", dtype=torch.float16)
        with mode:
            y = pkt.linear(x, w, b, backend="cuda")
            assert y.dtype == torch.float32
            y.backward(torch.linspace(-1, 1, y.numel()).reshape(y.shape))
        grads.append([y.detach()] + [t.grad for t in (x, w, b)])
    for got, want in zip(*grads):
        assert got.dtype == want.dtype
        torch.testing.assert_close(got, want, rtol=0, atol=0)


OPCHECK = {
    "relu": lambda: (randn(3, 4, seed="r"), "auto", None),
    "relu_backward": lambda: (randn(3, 4, seed="dy"), randn(3, 4, seed="y"), "auto", None),
    "conv2d": lambda: (*_conv_case(3)[:3], [1, 2], [1, 0], [1, 1], 2, "relu", "auto", None),
    "conv2d_backward_input": lambda: (randn(2, 4, 6, 2, seed="dy"), randn(4, 2, 3, 3, seed="w"), [2, 4, 6, 5],
                                      [1, 2], [1, 0], [1, 1], 2, "auto", None),
    "conv2d_backward_weight": lambda: (randn(2, 4, 6, 5, seed="x"), randn(2, 4, 6, 2, seed="dy"), [4, 2, 3, 3],
                                       [1, 2], [1, 0], [1, 1], 2, "auto", None),
    "matmul": lambda: (randn(3, 5, seed="a"), randn(4, 3, seed="b"), True, True, "auto", None),
}


@pytest.mark.parametrize("op", sorted(OPCHECK))
def test_opcheck(op):
    """torch's own check of a custom op: schema, fake (shape) kernel, autograd registration."""
    torch.library.opcheck(getattr(torch.ops.pykern, op).default, OPCHECK[op]())


@pytest.mark.parametrize("op", sorted(OPCHECK))
def test_the_cuda_kernel_forwards_every_argument(op):
    """The CUDA kernel (the CPU one inside torch's stream ordering), run here on CPU tensors by
    dispatching to the CUDA key directly: the same result as the CPU kernel."""
    overload, args = getattr(torch.ops.pykern, op).default, OPCHECK[op]()
    cuda_key = torch._C.DispatchKeySet(torch._C.DispatchKey.CUDA)
    with torch.no_grad():
        close(overload.redispatch(cuda_key, *args), overload(*args))


def test_backward_ops_match_torch():
    x, w, _, kw = _conv_case(3)
    y = F.conv2d(x, w, None, **kw)
    dy = randn(*y.shape, seed="dy", grad=False)
    dx, dw = torch.autograd.grad(y, (x, w), dy)
    geo = ([1, 2], [1, 0], [1, 1], 2)
    close(torch.ops.pykern.conv2d_backward_input(dy, w, list(x.shape), *geo, "auto", None), dx)
    close(torch.ops.pykern.conv2d_backward_weight(x, dy, list(w.shape), *geo, "auto", None), dw)
    z = randn(*dy.shape[2:], seed="z", grad=False)
    close(torch.ops.pykern.relu_backward(dy[0, 0], torch.relu(z), "auto", None), dy[0, 0] * (z > 0))


# --- modules ----------------------------------------------------------------------------------
MODULES = [
    ("Conv2d", (3, 4, 3), dict(stride=2, padding=1), (2, 3, 9, 8)),
    ("Conv2d", (4, 6, (3, 2)), dict(groups=2, bias=False, dilation=(1, 2)), (1, 4, 7, 9)),
    ("Conv2d", (3, 4, 3), dict(padding="same"), (2, 3, 6, 5)),
    ("Conv2d", (3, 4, 3), dict(padding=2, padding_mode="reflect"), (1, 3, 6, 6)),
    ("Linear", (7, 5), dict(), (2, 3, 7)),
    ("Linear", (7, 5), dict(bias=False), (4, 7)),
    ("ReLU", (), dict(), (3, 8)),
]


@pytest.mark.parametrize("name, args, kwargs, shape", MODULES)
def test_module_is_a_drop_in_replacement(name, args, kwargs, shape):
    torch.manual_seed(seed_for(name, args))
    ref = getattr(torch.nn, name)(*args, **kwargs).double()
    mod = getattr(pkt.nn, name)(*args, **kwargs).double()
    assert isinstance(mod, type(ref))
    assert list(mod.state_dict()) == list(ref.state_dict())
    mod.load_state_dict(ref.state_dict())
    x = randn(*shape, seed=name)
    close(mod(x), ref(x))
    got = torch.autograd.grad(mod(x).square().sum(), [x, *mod.parameters()])
    want = torch.autograd.grad(ref(x).square().sum(), [x, *ref.parameters()])
    for g, r in zip(got, want):
        close(g, r)


def test_module_backend_and_variant_are_used():
    conv = pkt.nn.Conv2d(2, 3, 3, backend="numpy", variant="no_such_variant")
    with pytest.raises(ValueError, match="no variant 'no_such_variant' on backend 'numpy'"):
        conv(torch.randn(1, 2, 5, 5))
    conv.variant = "reference"
    x = torch.randn(1, 2, 5, 5)
    close(conv(x), F.conv2d(x, conv.weight, conv.bias), torch.float32)
    assert "variant='reference'" in repr(conv)


def test_conv2d_module_fuses_relu():
    torch.manual_seed(3)
    conv = pkt.nn.Conv2d(2, 3, 3, padding=1, activation="relu").double()
    x = randn(1, 2, 5, 5, seed="fuse")
    y = conv(x)
    assert (y == 0).any() and (y > 0).any()
    close(y, torch.relu(F.conv2d(x, conv.weight, conv.bias, padding=1)))


def _small_cnn(layers):
    return torch.nn.Sequential(layers.Conv2d(1, 4, 3, padding=1), layers.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Flatten(), layers.Linear(4 * 4 * 4, 3))


def _train_step(model, x, target):
    loss = F.cross_entropy(model(x), target)
    loss.backward()
    return loss.detach(), [p.grad for p in model.parameters()]


def _compiled_matches_torch(compile_backend):
    torch.manual_seed(7)
    ref = _small_cnn(torch.nn)
    model = _small_cnn(pkt.nn)
    model.load_state_dict(ref.state_dict())
    x, target = randn(5, 1, 8, 8, seed="cx", dtype=torch.float32, grad=False), torch.tensor([0, 2, 1, 1, 0])
    torch._dynamo.reset()
    loss, grads = _train_step(torch.compile(model, backend=compile_backend, fullgraph=True), x, target)
    want_loss, want_grads = _train_step(ref, x, target)
    close(loss, want_loss, torch.float32)
    for g, r in zip(grads, want_grads):
        close(g, r, torch.float32)


def test_torch_compile_traces_the_ops_without_graph_breaks():
    """fullgraph=True: a graph break would raise. aot_eager runs Dynamo and AOTAutograd (the fake
    kernels, the backward graph) without Inductor's code generation, which takes most of a minute."""
    _compiled_matches_torch("aot_eager")


def test_torch_compile_dynamic_shapes():
    """The fake kernels compute output shapes from symbolic sizes: one graph serves every batch size."""
    torch.manual_seed(8)
    ref = _small_cnn(torch.nn)
    model = _small_cnn(pkt.nn)
    model.load_state_dict(ref.state_dict())
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager", dynamic=True, fullgraph=True)
    for n in (3, 6):
        x = randn(n, 1, 8, 8, seed=f"dyn{n}", dtype=torch.float32, grad=False)
        close(compiled(x), ref(x), torch.float32)


@pytest.mark.slow
def test_torch_compile_inductor():
    _compiled_matches_torch("inductor")


# --- the GPU backends' code paths, in the simulators --------------------------------------------
BACKWARD_OPS = ("relu_backward", "conv2d_backward_input", "conv2d_backward_weight")


@pytest.mark.parametrize("backend", ["cuda", "numba"])
def test_gpu_backends_on_cpu_tensors(backend):
    """CPU tensors with backend='cuda'/'numba': pykern copies them to the (here simulated) device
    and back; forward and gradients must match torch."""
    require_backend(backend)
    x, w, b, kw = _conv_case(4)
    variant = "direct" if backend == "cuda" else None  # the default, implicit_gemm, is float32-only
    close(pkt.conv2d(x, w, b, backend=backend, variant=variant, **kw), F.conv2d(x, w, b, **kw))
    a = randn(3, 5, seed="sa")
    # naive takes the transpose flags on both GPU backends: linear's weight is read in place.
    assert torch.autograd.gradcheck(lambda a: pkt.linear(a, a, backend=backend, variant="naive"), (a,),
                                    fast_mode=True)
    missing = [op for op in BACKWARD_OPS if not pk.variants(op, backend)]
    if missing:
        pytest.skip(f"pykern has no {backend} variants of {', '.join(missing)} yet")
    assert torch.autograd.gradcheck(lambda a: pkt.relu(a, backend=backend), (a,), fast_mode=True)
    assert torch.autograd.gradcheck(lambda *t: pkt.conv2d(*t, backend=backend, variant=variant, **kw),
                                    (x, w, b), fast_mode=True)


# --- CUDA tensors -----------------------------------------------------------------------------
@needs_cuda
@pytest.mark.parametrize("backend", ["cuda", "numba"])
def test_cuda_tensors_gradcheck(backend):
    require_backend(backend)
    x, w, b, kw = _conv_case(0, device="cuda")
    out = pkt.conv2d(x, w, b, backend=backend, **kw)
    assert out.is_cuda
    close(out, F.conv2d(x, w, b, **kw))
    assert torch.autograd.gradcheck(lambda *t: pkt.conv2d(*t, backend=backend, activation="relu", **kw),
                                    (x, w, b), fast_mode=True)
    a = randn(5, 3, seed="ca", device="cuda")
    variant = "naive" if backend == "cuda" else None
    assert torch.autograd.gradcheck(lambda a: pkt.linear(a, a, backend=backend, variant=variant), (a,))
    assert torch.autograd.gradcheck(lambda a: pkt.relu(a, backend=backend), (a,))


@needs_cuda
def test_cuda_tensors_on_a_side_stream():
    """Work queued on torch's current (non-default) stream is ordered with pykern's kernels."""
    require_backend("cuda")
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        a = torch.randn(512, 512, device="cuda")
        b = a * 2  # queued on s; pykern must see it finished
        got = pkt.matmul(b, b)
        want = b @ b
    torch.cuda.synchronize()
    close(got, want, torch.float32)


def test_a_matmul_variant_without_transpose_flags_gets_a_transposed_copy():
    """linear reads its weight transposed; double_buffer (the CUDA C++ default) takes no flags,
    so the adapter hands it a transposed copy: forward and gradients still match torch."""
    require_backend("cuda")
    (double_buffer,) = [v for v in pk.variants("matmul", "cuda") if v.name == "double_buffer"]
    assert "transpose_b" not in double_buffer.takes
    x = randn(5, 7, seed="copy-x", dtype=torch.float32)
    w = randn(3, 7, seed="copy-w", dtype=torch.float32)
    y = pkt.linear(x, w, backend="cuda", variant="double_buffer")
    want = torch.nn.functional.linear(x, w)
    close(y, want, torch.float32)
    y.backward(torch.ones_like(y))
    gx, gw = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    want.backward(torch.ones_like(want))
    close(gx, x.grad, torch.float32)
    close(gw, w.grad, torch.float32)

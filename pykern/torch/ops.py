"""pykern's ops as PyTorch operators, with autograd and fake (shape-only) implementations.

Each op is defined in the ``pykern`` namespace (``torch.ops.pykern.conv2d`` and so on) by one
``torch.library.Library``, and given a kernel per dispatch key:

- CPU and CUDA: the pykern call (the CUDA kernel also orders it with torch's current stream);
- fake (``register_fake``): output shapes only, so torch.compile traces the op, opaque, instead
  of breaking the graph;
- Autograd: an ``autograd.Function`` applied when an input requires a gradient, whose backward
  formulas call pykern's backward ops (operators too, so the backward graph compiles as well).

This is what ``torch.library.custom_op`` builds, less the Python layers it runs on every call (a
generic autograd wrapper, an aliasing check of each result, a torch.compile-disabling wrapper):
on a small tensor they cost more than pykern's own dispatch. bench/bench_torch_overhead.py
measures what is left.

The direct path: where nothing but autograd needs to see a call (plain CPU or CUDA tensors; no
torch.compile tracing, dispatch or function mode, functorch transform or autocast active), the
public functions and the backward formulas skip torch's dispatcher and call the kernel
themselves, through an ``autograd.Function`` with the same context and formulas when a gradient
is needed (``linear`` in one such node). Under torch.profiler each direct call records the event
the dispatcher would ("pykern::relu"; "pykern::linear"), and the gradient nodes keep their names
("pykern_reluBackward"), so a profile reads the same either way. Each dispatcher hop (op,
Autograd kernel, redispatch below it) is a few microseconds of Python, and a training step makes
several per layer: this path took a ReLU's forward and backward at 32 x 64 (bench/train_cnn.py's
small CNN) from about 114 to 66 us (torch's own: 21). Results, gradients and the autograd graph are the same either way
(tests/test_torch_adapter.py runs both); anything else still goes through the dispatcher, so
compiled graphs, FakeTensor tracing and autocast see the operators.

Arguments follow pykern's functions: ``backend`` ("auto", "numpy", "numba", "cuda") and
``variant`` (None: the backend's default) choose the forward kernel. The backward of matmul is
matmul, so it runs the forward's variant; the other backward ops run their backend's default.
A matmul variant that does not take the transpose flags (the CUDA C++ rungs above smem_tiled) gets the
transposed operand as a contiguous copy, made here; pykern itself never copies.
CPU tensors run on the NumPy backend under "auto", CUDA tensors on cuda (else numba).

Mixed precision (``torch.autocast``). conv2d and matmul have autocast kernels (AutocastCUDA, and
AutocastCPU for CPU tensors) that do what torch's autocast does for its own conv2d and linear, on
its lower_precision_fp list: floating-point inputs, float64 excepted, are cast to autocast's dtype
(float16 or bfloat16), the op runs in it, on the cuda backend the tensor-core rung ``mma_sync``
(pykern's route for 16-bit inputs), and the output has that dtype, as torch's: matmul's float32
result of 16-bit inputs is rounded to it, and ``linear`` adds its bias in it. relu has none: on no
autocast list, it runs in its input's dtype. Where the backend that would run has no kernel in
autocast's dtype (numpy and numba have no 16-bit conv2d or matmul; a bfloat16 CPU tensor has no
NumPy dtype) the call is refused with the reason, never run in float32 behind the user's back. CPU
tensors run under ``torch.autocast("cpu", dtype=torch.float16)`` with ``backend="cuda"`` (the tests
run the GPU path so, in the simulator). The casts happen per call (torch's autocast keeps a cast
weight for the whole autocast region; pykern's kernel casts it again at each use).

Gradients of 16-bit tensors. conv2d: no backend has a 16-bit conv2d backward kernel, so the saved
x and w and the incoming gradient are upcast to float32 (exactly), the float32 backward ops run,
and each gradient is returned in its input's dtype, rounded once, as torch's 16-bit convolution
returns its own. matmul: the gradients run on the forward's 16-bit rung, with dy (float32, the
product's dtype) rounded to the operands' dtype, as a 16-bit matmul's backward gets a 16-bit dy;
under autocast dy comes from the 16-bit output, so that rounding is exact. Each gradient has its
input's dtype; autograd carries it back through autocast's cast to the float32 parameter, as for
torch's ops. relu_backward runs in the dtype of relu's output. Scale the loss
(``torch.amp.GradScaler``) as with torch's layers: 16-bit gradients underflow as torch's do.

Vocabulary: x: (N, C, H, W), w: (K, C//groups, R, S), y and dy: (N, K, P, Q); a: (M, K),
b: (K, N) (stored transposed when the flag says so).
"""
import functools
from typing import Optional

import torch

import pykern as pk
from pykern.ops.conv2d import SPEC as CONV2D_SPEC
from pykern.ops.conv2d import output_size

from ._convert import as_array, as_tensor, on_current_stream

Tensor = torch.Tensor
HALF = (torch.float16, torch.bfloat16)

_LIB = torch.library.Library("pykern", "DEF")  # kept alive here: the registrations live as long as it does

# Private torch names, those register_autograd's own kernel uses (torch/_library/autograd.py): a
# guard that keeps autograd out of whatever runs inside, and the dispatch keys below autograd.
_BELOW_AUTOGRAD = torch._C._AutoDispatchBelowAutograd
_AFTER_AUTOGRAD = torch._C._after_autograd_keyset

# op -> (its CPU kernel, its CUDA kernel, the autograd.Function of the direct path or None)
_DIRECT: dict = {}
_PLAIN_TYPES = (Tensor, torch.nn.Parameter)  # exactly these: a subclass may override anything


def _unobserved() -> bool:
    """Whether no torch machinery other than autograd needs to see an operator call: no
    torch.compile tracing, no dispatch or function mode (FakeTensorMode, FlopCounterMode, ...),
    no functorch transform, no autocast. Each test is a C call (well under 1 us). (The profiler
    is served by _recorded.)"""
    return not (torch.compiler.is_compiling() or torch._C._len_torch_dispatch_stack()
                or torch._C._is_torch_function_mode_enabled() or torch._C._are_functorch_transforms_active()
                or torch._C._is_any_autocast_enabled())


def _recorded(name: str, run, *args):
    """run(*args), inside a torch.profiler event named as the dispatcher names the operator's
    ("pykern::relu") while a profiler is on, so a profile of the direct path reads as one of the
    dispatcher's (bench/train_cnn.py's table); nothing extra otherwise."""
    if not torch._C._autograd._profiler_enabled():
        return run(*args)
    with torch.profiler.record_function(name):
        return run(*args)


def _route(args):
    """None where a call with these arguments must go through the dispatcher; else (whether a
    tensor is on CUDA, whether one needs a gradient) for the direct path."""
    if not _unobserved():
        return None
    cuda = False
    wants_grad = False
    grad_on = torch.is_grad_enabled()
    for a in args:
        if isinstance(a, Tensor):
            if type(a) not in _PLAIN_TYPES or not (a.is_cpu or a.is_cuda):
                return None  # a subclass, a meta tensor, another device: the dispatcher decides
            cuda = cuda or a.is_cuda
            wants_grad = wants_grad or (grad_on and a.requires_grad)
    return cuda, wants_grad


def _call(op, *args):
    """``op(*args)``, by the direct path where it may be taken (see the module docstring)."""
    kernels = _DIRECT.get(op)
    route = None if kernels is None else _route(args)
    if route is None:
        return op(*args)
    cuda, wants_grad = route
    cpu_kernel, cuda_kernel, function = kernels
    if wants_grad:
        return _recorded(op._name, function.apply, *args) if function is not None else op(*args)
    return _recorded(op._name, cuda_kernel if cuda else cpu_kernel, *args)


def _define(schema: str, kernel, fake):
    """Define ``pykern::<schema>`` with ``kernel`` on CPU and CUDA tensors and ``fake`` for shapes;
    returns the operator (its overload: calling it skips the overload lookup)."""
    name = schema.split("(")[0]
    _LIB.define(schema, tags=(torch.Tag.pt2_compliant_tag,))  # as custom_op tagged them: compile-tested

    def on_cuda(*args):
        with on_current_stream(*(a for a in args if isinstance(a, Tensor))):
            return kernel(*args)

    _LIB.impl(name, kernel, "CPU")
    _LIB.impl(name, on_cuda, "CUDA")
    torch.library.register_fake(f"pykern::{name}", fake, lib=_LIB)
    op = getattr(torch.ops.pykern, name).default
    _DIRECT[op] = (kernel, on_cuda, None)
    return op


def _autograd(op, setup_context, backward) -> None:
    """Make ``op`` differentiable: torch.library.register_autograd's contract
    (``setup_context(ctx, inputs, output)``; ``backward(ctx, grad)`` gives a gradient or None per
    input), as a kernel that calls ``op`` straight through unless a tensor input requires a gradient."""
    optional_tensor = torch.OptionalType.ofTensor()  # Tensor and Tensor? are both its subtypes
    tensor_args = [i for i, a in enumerate(op._schema.arguments) if a.type.isSubtypeOf(optional_tensor)]

    def forward(ctx, *args):
        *args, keyset = args
        with _BELOW_AUTOGRAD():
            out = op.redispatch(keyset & _AFTER_AUTOGRAD, *args)
        setup_context(ctx, args, out)
        return out

    def backward_with_keyset(ctx, grad):
        return (*backward(ctx, grad), None)

    # Its gradient node is "pykern_<op>Backward" (torch.profiler, bench/train_cnn.py's PROFILE_OPS).
    function = type(f"pykern_{op._opname}", (torch.autograd.Function,),
                    {"forward": staticmethod(forward), "backward": staticmethod(backward_with_keyset)})

    def kernel(keyset, *args):
        if torch.is_grad_enabled() and any(args[i] is not None and args[i].requires_grad for i in tensor_args):
            return function.apply(*args, keyset)  # the keyset last: needs_input_grad[i] is input i's
        with _BELOW_AUTOGRAD():
            return op.redispatch(keyset & _AFTER_AUTOGRAD, *args)

    _LIB.impl(op._opname, kernel, "Autograd", with_keyset=True)

    # The direct path's Function: the same node name, context and formulas, the kernel called
    # in place of the redispatch (_call has checked that the tensors are plain CPU or CUDA ones).
    cpu_kernel, cuda_kernel, _ = _DIRECT[op]

    def direct_forward(ctx, *args):
        cuda = any(isinstance(a, Tensor) and a.is_cuda for a in args)
        out = cuda_kernel(*args) if cuda else cpu_kernel(*args)
        setup_context(ctx, args, out)
        return out

    direct = type(f"pykern_{op._opname}", (torch.autograd.Function,),
                  {"forward": staticmethod(direct_forward), "backward": staticmethod(backward)})
    _DIRECT[op] = (cpu_kernel, cuda_kernel, direct)


def _maybe(t: Optional[Tensor]):
    return None if t is None else as_array(t)


def _geometry(stride, padding, dilation, groups) -> dict:
    return {"stride": tuple(stride), "padding": tuple(padding), "dilation": tuple(dilation), "groups": groups}


# --- relu ---------------------------------------------------------------------------------------
def _relu(x, backend, variant):
    return as_tensor(pk.relu(as_array(x), backend=backend, variant=variant))


def _relu_backward(dy, y, backend, variant):
    """dx = dy where y > 0, else 0 (y = relu(x) is positive exactly where x is)."""
    return as_tensor(pk.relu_backward(as_array(dy), as_array(y), backend=backend, variant=variant))


_RELU = _define("relu(Tensor x, str backend, str? variant) -> Tensor", _relu,
               lambda x, backend, variant: x.new_empty(x.shape))
_RELU_BACKWARD = _define("relu_backward(Tensor dy, Tensor y, str backend, str? variant) -> Tensor", _relu_backward,
                        lambda dy, y, backend, variant: dy.new_empty(dy.shape))


def _relu_backward_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])
    ctx.backend = inputs[2]


def _relu_backward_grad(ctx, g):
    # dx = dy * (y > 0) is linear in dy, and y only selects: no gradient flows to y.
    (y,) = ctx.saved_tensors
    return _call(_RELU_BACKWARD, g, y, ctx.backend, None), None, None, None


def _relu_setup(ctx, inputs, output):
    # The output, not the input, is saved (as torch does): an in-place ReLU may overwrite x.
    ctx.save_for_backward(output)
    ctx.backend = inputs[1]


def _relu_grad(ctx, dy):
    (y,) = ctx.saved_tensors
    return _call(_RELU_BACKWARD, dy, y, ctx.backend, None), None, None


_autograd(_RELU_BACKWARD, _relu_backward_setup, _relu_backward_grad)
_autograd(_RELU, _relu_setup, _relu_grad)


# --- conv2d -------------------------------------------------------------------------------------
def _conv2d(x, w, bias, stride, padding, dilation, groups, activation, backend, variant):
    return as_tensor(pk.conv2d(as_array(x), as_array(w), _maybe(bias), activation=activation, backend=backend,
                               variant=variant, **_geometry(stride, padding, dilation, groups)))


def _conv2d_fake(x, w, bias, stride, padding, dilation, groups, activation, backend, variant):
    p = CONV2D_SPEC.normalize(_geometry(stride, padding, dilation, groups) | {"activation": activation})
    pq = output_size(x.shape[2], x.shape[3], w.shape[2], w.shape[3], p["stride"], p["padding"], p["dilation"])
    return x.new_empty((x.shape[0], w.shape[0]) + tuple(pq))


def _conv2d_backward_input(dy, w, x_shape, stride, padding, dilation, groups, backend, variant):
    return as_tensor(pk.conv2d_backward_input(as_array(dy), as_array(w), tuple(x_shape), backend=backend,
                                              variant=variant, **_geometry(stride, padding, dilation, groups)))


def _conv2d_backward_weight(x, dy, w_shape, stride, padding, dilation, groups, backend, variant):
    return as_tensor(pk.conv2d_backward_weight(as_array(x), as_array(dy), tuple(w_shape), backend=backend,
                                               variant=variant, **_geometry(stride, padding, dilation, groups)))


_GEOMETRY = "SymInt[] stride, SymInt[] padding, SymInt[] dilation, SymInt groups"
_CONV2D = _define(f"conv2d(Tensor x, Tensor w, Tensor? bias, {_GEOMETRY}, str? activation, str backend, "
                    "str? variant) -> Tensor", _conv2d, _conv2d_fake)
_CONV2D_BACKWARD_INPUT = _define(
    f"conv2d_backward_input(Tensor dy, Tensor w, SymInt[] x_shape, {_GEOMETRY}, str backend, str? variant) -> Tensor",
    _conv2d_backward_input, lambda dy, w, x_shape, *_: dy.new_empty(tuple(x_shape)))
_CONV2D_BACKWARD_WEIGHT = _define(
    f"conv2d_backward_weight(Tensor x, Tensor dy, SymInt[] w_shape, {_GEOMETRY}, str backend, str? variant) -> Tensor",
    _conv2d_backward_weight, lambda x, dy, w_shape, *_: x.new_empty(tuple(w_shape)))


# Second derivatives: each backward op is bilinear, the adjoint of conv2d in one argument, so
# its gradients are conv2d itself and the other backward op (<dx, g> = <dy, conv2d(g, w)>).
def _backward_input_setup(ctx, inputs, output):
    dy, w, x_shape, stride, padding, dilation, groups, backend, _ = inputs
    ctx.save_for_backward(dy, w)
    ctx.geometry, ctx.backend = (list(stride), list(padding), list(dilation), groups), backend


def _backward_input_grad(ctx, g):
    dy, w = ctx.saved_tensors
    d_dy = d_w = None
    if ctx.needs_input_grad[0]:
        d_dy = _call(_CONV2D, g, w, None, *ctx.geometry, None, ctx.backend, None)
    if ctx.needs_input_grad[1]:
        d_w = _call(_CONV2D_BACKWARD_WEIGHT, g, dy, list(w.shape), *ctx.geometry, ctx.backend, None)
    return (d_dy, d_w) + (None,) * 7


def _backward_weight_setup(ctx, inputs, output):
    x, dy, w_shape, stride, padding, dilation, groups, backend, _ = inputs
    ctx.save_for_backward(x, dy)
    ctx.geometry, ctx.backend = (list(stride), list(padding), list(dilation), groups), backend


def _backward_weight_grad(ctx, h):
    x, dy = ctx.saved_tensors
    d_x = d_dy = None
    if ctx.needs_input_grad[0]:
        d_x = _call(_CONV2D_BACKWARD_INPUT, dy, h, list(x.shape), *ctx.geometry, ctx.backend, None)
    if ctx.needs_input_grad[1]:
        d_dy = _call(_CONV2D, x, h, None, *ctx.geometry, None, ctx.backend, None)
    return (d_x, d_dy) + (None,) * 7


def _conv2d_setup(ctx, inputs, output):
    x, w, bias, stride, padding, dilation, groups, activation, backend, _ = inputs
    relu = activation == "relu"
    # With a fused ReLU the output tells where the gradient passes (y > 0 exactly where the
    # pre-activation is positive), so the pre-activation need not be kept.
    ctx.save_for_backward(x, w, output if relu else None)
    ctx.relu, ctx.has_bias, ctx.backend = relu, bias is not None, backend
    ctx.dtypes = (x.dtype, w.dtype, None if bias is None else bias.dtype)
    ctx.geometry = (list(stride), list(padding), list(dilation), groups)


def _conv2d_grad(ctx, dy):
    x, w, y = ctx.saved_tensors
    if x.dtype in HALF:
        # No backend has a 16-bit backward kernel (pk.variants("conv2d_backward_input", ...)): the
        # gradients are computed in float32 from the exactly upcast tensors, and each is returned
        # in its input's dtype, rounded once, as a 16-bit convolution's gradients are.
        x, w, dy, y = (None if t is None else t.float() for t in (x, w, dy, y))
    if ctx.relu:
        dy = _call(_RELU_BACKWARD, dy, y, ctx.backend, None)
    dx = dw = db = None
    if ctx.needs_input_grad[0]:
        dx = _call(_CONV2D_BACKWARD_INPUT, dy, w, list(x.shape), *ctx.geometry, ctx.backend, None).to(ctx.dtypes[0])
    if ctx.needs_input_grad[1]:
        dw = _call(_CONV2D_BACKWARD_WEIGHT, x, dy, list(w.shape), *ctx.geometry, ctx.backend, None).to(ctx.dtypes[1])
    if ctx.has_bias and ctx.needs_input_grad[2]:
        db = dy.sum((0, 2, 3)).to(ctx.dtypes[2])  # the bias gradient needs no kernel of its own
    return (dx, dw, db) + (None,) * 7


_autograd(_CONV2D_BACKWARD_INPUT, _backward_input_setup, _backward_input_grad)
_autograd(_CONV2D_BACKWARD_WEIGHT, _backward_weight_setup, _backward_weight_grad)
_autograd(_CONV2D, _conv2d_setup, _conv2d_grad)


# --- matmul -------------------------------------------------------------------------------------
def _resolve(device_type: str, backend: str) -> str:
    """The backend pykern runs for ``backend`` on ``device_type`` tensors: its "auto" rule, host
    arrays on numpy, GPU arrays on cuda, else numba."""
    if backend != "auto":
        return backend
    return "numpy" if device_type == "cpu" else "cuda" if pk.backends()["cuda"].available else "numba"


@functools.lru_cache(maxsize=None)
def _matmul_takes(device_type: str, backend: str, variant: Optional[str]):
    """The transpose flags taken by the matmul variant that pykern will run (pk.variants' ``takes``),
    or None where pykern will refuse the call anyway (unknown backend or variant: its own error
    then says why). Asked once per device type, backend and variant, not per call."""
    backend = _resolve(device_type, backend)
    try:
        listed = pk.variants("matmul", backend)
    except ValueError:
        return None
    chosen = [v for v in listed if (v.name == variant if variant is not None else v.default)]
    return frozenset(chosen[0].takes) if chosen else None


def _matmul(a, b, transpose_a, transpose_b, backend, variant):
    if transpose_a or transpose_b:
        takes = _matmul_takes(a.device.type, backend, variant)
        # A variant that reads its operands untransposed (CUDA C++ rungs above smem_tiled) gets a
        # transposed copy (by as_array) rather than a refusal inside a model. pykern never copies.
        if takes is not None and transpose_a and "transpose_a" not in takes:
            a, transpose_a = a.t(), False
        if takes is not None and transpose_b and "transpose_b" not in takes:
            b, transpose_b = b.t(), False
    return as_tensor(pk.matmul(as_array(a), as_array(b), transpose_a=transpose_a, transpose_b=transpose_b,
                               backend=backend, variant=variant))


def _matmul_fake(a, b, transpose_a, transpose_b, backend, variant):
    m = a.shape[1] if transpose_a else a.shape[0]
    n = b.shape[0] if transpose_b else b.shape[1]
    # pykern's rule: 16-bit inputs accumulate and return float32.
    dtype = torch.float32 if a.element_size() == 2 else a.dtype
    return a.new_empty((m, n), dtype=dtype)


_MATMUL = _define("matmul(Tensor a, Tensor b, bool transpose_a, bool transpose_b, str backend, str? variant) -> Tensor",
                 _matmul, _matmul_fake)


def _matmul_setup(ctx, inputs, output):
    a, b, ctx.ta, ctx.tb, ctx.backend, ctx.variant = inputs
    ctx.save_for_backward(a, b)


def _matmul_grad(ctx, dy):
    """c = op(a) @ op(b): d op(a) = dy @ op(b).T and d op(b) = op(a).T @ dy, each one matmul
    with flags, so no operand is ever transposed in memory."""
    a, b = ctx.saved_tensors
    def mm(*args):  # short: four calls below
        return _call(_MATMUL, *args)

    if a.dtype in HALF and dy.dtype != a.dtype:
        # 16-bit operands: the gradients run on the forward's tensor-core rung too, so dy (float32,
        # matmul's output dtype) is rounded to the operands' dtype, as a 16-bit matmul's backward
        # gets a 16-bit dy. Under autocast dy came from the 16-bit output: the rounding is exact.
        dy = dy.to(a.dtype)
    da = db = None
    if ctx.needs_input_grad[0]:
        da = (mm(b, dy, ctx.tb, True, ctx.backend, ctx.variant) if ctx.ta
              else mm(dy, b, False, not ctx.tb, ctx.backend, ctx.variant)).to(a.dtype)
    if ctx.needs_input_grad[1]:
        db = (mm(dy, a, True, ctx.ta, ctx.backend, ctx.variant) if ctx.tb
              else mm(a, dy, not ctx.ta, False, ctx.backend, ctx.variant)).to(b.dtype)
    return da, db, None, None, None, None


_autograd(_MATMUL, _matmul_setup, _matmul_grad)


# --- autocast -----------------------------------------------------------------------------------
# torch's autocast lists put conv2d and linear/matmul on lower_precision_fp (CUDA and CPU alike),
# relu on neither list. Custom ops are on no list, so without a kernel of their own autocast
# passes them by (a fallthrough) and float32 inputs stay float32.
AUTOCAST_DEVICES = ("cpu", "cuda")


@functools.lru_cache(maxsize=None)
def _autocast_refusal(op: str, device_type: str, dtype: torch.dtype, backend: str) -> Optional[str]:
    """Why pykern cannot run ``op`` in autocast's ``dtype`` on ``device_type`` tensors with
    ``backend``, or None. Asked once per combination, not per call."""
    name = str(dtype).removeprefix("torch.")
    where = f"pykern::{op} under torch.autocast({device_type!r}, dtype=torch.{name})"
    outside = f"run it outside autocast (torch.autocast({device_type!r}, enabled=False))"
    if device_type == "cpu" and dtype == torch.bfloat16:
        return (f"{where}: a bfloat16 CPU tensor has no NumPy dtype for pykern to take: use dtype=torch.float16 "
                f"(CPU tensors run in float16 with backend='cuda'), or {outside}")
    resolved = _resolve(device_type, backend)
    try:
        listed = pk.variants(op, resolved)
    except ValueError:
        return None  # an unknown backend: pykern's own error says so
    if any(name in v.dtypes for v in listed):
        return None
    have = [b for b in pk.backends() if any(name in v.dtypes for v in pk.variants(op, b))]
    instead = f"use backend={' or '.join(map(repr, have))}, or " if have else ""
    return f"{where}: pykern's {resolved} backend has no {name} {op} kernel; {instead}{outside}"


def _autocast(op) -> None:
    """Give ``op`` autocast kernels (AutocastCPU, AutocastCUDA) that do what torch's autocast does
    for an op on its lower_precision_fp list: cast each floating-point tensor input on that device,
    float64 excepted, to autocast's dtype (torch.get_autocast_dtype, read per call: float16 or
    bfloat16), run the op below autocast, and return the output in that dtype (matmul's float32
    output of 16-bit inputs is rounded to it, as torch's 16-bit matmul rounds its own). Where the
    backend that would run has no kernel for that dtype, a TypeError says so, before any cast.

    torch.library.register_autocast does the casting, but with one dtype fixed when registered (not
    autocast's current one), it casts float64 too, and leaves matmul's float32 output as it is."""
    optional_tensor = torch.OptionalType.ofTensor()
    tensor_args = [i for i, a in enumerate(op._schema.arguments) if a.type.isSubtypeOf(optional_tensor)]
    backend_at = [a.name for a in op._schema.arguments].index("backend")

    def register(device_type: str) -> None:
        key_name = "Autocast" + torch._C._dispatch_key_for_device(device_type)  # AutocastCPU, AutocastCUDA
        # The op runs again from the top with this key excluded, as torch's autocast kernels run
        # theirs: a redispatch below it recursed under torch.compile, whose Python dispatcher
        # computes the keys afresh (autocast's still among them).
        below = torch._C.DispatchKeySet(getattr(torch._C.DispatchKey, key_name))

        def kernel(*args):
            dtype = torch.get_autocast_dtype(device_type)
            cast = [i for i in tensor_args if args[i] is not None and args[i].is_floating_point()
                    and args[i].dtype != torch.float64 and args[i].device.type == device_type]
            if cast:
                reason = _autocast_refusal(op._opname, device_type, dtype, args[backend_at])
                if reason:
                    raise TypeError(reason)
                args = list(args)
                for i in cast:  # recorded by autograd: the gradients come back through these casts
                    args[i] = args[i].to(dtype)
            with torch._C._ExcludeDispatchKeyGuard(below):
                out = op(*args)
            return out if not cast or out.dtype == dtype else out.to(dtype)

        _LIB.impl(op._opname, kernel, key_name)

    for device_type in AUTOCAST_DEVICES:
        register(device_type)


_autocast(_CONV2D)
_autocast(_MATMUL)


# --- the public functions -----------------------------------------------------------------------
def _pair(v) -> list:
    return [v, v] if isinstance(v, int) else list(v)


def relu(x: Tensor, *, backend: str = "auto", variant: Optional[str] = None) -> Tensor:
    """y = max(x, 0) elementwise. x: any shape."""
    return _call(_RELU, x, backend, variant)


def conv2d(x: Tensor, w: Tensor, bias: Optional[Tensor] = None, *, stride=1, padding=0, dilation=1,
           groups: int = 1, activation: Optional[str] = None, backend: str = "auto",
           variant: Optional[str] = None) -> Tensor:
    """torch.nn.functional.conv2d's semantics (int or pair stride/padding/dilation), plus
    ``activation="relu"`` fused after the bias. x: (N, C, H, W), w: (K, C//groups, R, S),
    bias: (K,) or None -> (N, K, P, Q)."""
    return _call(_CONV2D, x, w, bias, _pair(stride), _pair(padding), _pair(dilation), groups, activation, backend,
                 variant)


def matmul(a: Tensor, b: Tensor, *, transpose_a: bool = False, transpose_b: bool = False,
           backend: str = "auto", variant: Optional[str] = None) -> Tensor:
    """c = op(a) @ op(b), op(t) = t.T where the flag is set. a: (M, K) or stored (K, M) with
    transpose_a; b: (K, N) or stored (N, K) with transpose_b -> c: (M, N)."""
    return _call(_MATMUL, a, b, transpose_a, transpose_b, backend, variant)


def linear(x: Tensor, w: Tensor, bias: Optional[Tensor] = None, *, backend: str = "auto",
           variant: Optional[str] = None) -> Tensor:
    """torch.nn.functional.linear: y = x @ w.T + bias. x: (*, in), w: (out, in), bias: (out,)."""
    x2 = x if x.dim() == 2 else x.reshape(-1, x.shape[-1])
    route = _route((x2, w, bias))
    if route is not None:  # the direct path (never under autocast): one node, as torch's own linear
        if route[1]:
            y = _recorded("pykern::linear", _Linear.apply, x2, w, bias, backend, variant)
        else:
            y = _recorded("pykern::linear", _linear_forward, x2, w, bias, backend, variant, route[0])
    else:
        y = _MATMUL(x2, w, False, True, backend, variant)
        if bias is not None:
            if y.dtype in HALF and bias.dtype != y.dtype and torch.is_autocast_enabled(y.device.type):
                bias = bias.to(y.dtype)  # as torch's linear (addmm) takes its bias under autocast
            y = y + bias
    return y if x.dim() == 2 else y.reshape(tuple(x.shape[:-1]) + (w.shape[0],))


def _linear_forward(x, w, bias, backend, variant, cuda: bool) -> Tensor:
    """x @ w.T by the matmul kernel, the bias added in place. x: (M, in), w: (out, in) -> (M, out)."""
    y = _DIRECT[_MATMUL][1 if cuda else 0](x, w, False, True, backend, variant)
    return y if bias is None else y.add_(bias)


class _LinearFunction(torch.autograd.Function):
    """linear's direct path in one autograd node (the dispatcher's path makes four: a view, the
    matmul, the bias add and a view back): the gradients are the matmul's, and the bias's the sum
    over rows, in the same kernels, dtypes and order as that path (tests/test_torch_adapter.py)."""

    @staticmethod
    def forward(ctx, x, w, bias, backend, variant):
        ctx.save_for_backward(x, w)
        ctx.backend, ctx.variant, ctx.has_bias = backend, variant, bias is not None
        return _linear_forward(x, w, bias, backend, variant, x.is_cuda)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        dx = dw = db = None
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = dy.sum(0)
        if x.dtype in HALF and dy.dtype != x.dtype:
            dy = dy.to(x.dtype)  # as _matmul_grad: the 16-bit rung's backward gets a 16-bit dy
        if ctx.needs_input_grad[0]:  # dy @ w: (M, out) @ (out, in)
            dx = _call(_MATMUL, dy, w, False, False, ctx.backend, ctx.variant).to(x.dtype)
        if ctx.needs_input_grad[1]:  # dy.T @ x
            dw = _call(_MATMUL, dy, x, True, False, ctx.backend, ctx.variant).to(w.dtype)
        return dx, dw, db, None, None


# Its gradient node is "pykern_linearBackward", as the operators' are "pykern_<op>Backward".
_Linear = type("pykern_linear", (_LinearFunction,), {})

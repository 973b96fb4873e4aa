"""pykern's ops on dask arrays: lazy graphs whose every task is one pykern call on one chunk.

Each op validates its arguments once, here, with the op's own spec (the shapes, dtypes and
parameters pk.<op> would check on the whole arrays, with the same messages), checks that the
chunking can work, and builds a graph:

    relu, relu_backward       blockwise: one pk call per chunk
    conv2d                    one task per (batch chunk, output tile): the tile's input rows and
                              columns (its own chunk plus the halo sliced off its neighbours, zero
                              padding where it reaches past the image; see tiles.py), the filter
                              and bias as one chunk each
    conv2d_backward_input     one task per batch chunk
    conv2d_backward_weight    one partial dw per batch chunk, summed in a fixed binary tree
    matmul                    one partial product per (M block, N block, K block), summed over K
                              in a fixed binary tree

The fixed trees make each result independent of which worker finishes first: the same graph
gives the same bits. Every chunk-level function below is a module-level function of plain
arguments, so any worker with pykern installed can run it; NumPy chunks go to pykern's host
variants and CuPy chunks to its GPU ones through pk's dispatch (``backend=``/``variant=`` pass
through as given).
"""
from __future__ import annotations

import functools
import operator

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

import pykern as pk
from .._arrays import ArrayInfo
from .._backends import availability
from .._dispatch import resolve_backend
from .._registry import get_variant
from ..ops import SPECS
from .tiles import axis_tiles, direct_padding

# --- chunk-level functions (run on the workers) ---------------------------------------------


def _xp(a):
    """NumPy or CuPy: the module of a chunk."""
    if isinstance(a, np.ndarray):
        return np
    import cupy
    return cupy.get_array_module(a)


def _contiguous(a):
    # dask hands out views (a slice of a chunk, a transposed block): pykern never copies
    # implicitly, so the copy is made here, once, and only where the chunk needs it
    return a if a.flags.c_contiguous else _xp(a).ascontiguousarray(a)


def _relu(x, backend, variant):
    return pk.relu(_contiguous(x), backend=backend, variant=variant)


def _relu_backward(dy, x, backend, variant):
    return pk.relu_backward(_contiguous(dy), _contiguous(x), backend=backend, variant=variant)


def _conv_chunk(x, w, bias, *, padding, **kw):
    """conv2d of one whole input chunk: the tile is exactly its output under ``padding``."""
    return pk.conv2d(_contiguous(x), w, bias, padding=padding, **kw)


def _conv_tile(pieces, offsets, w, bias, *, shape, **kw):
    """conv2d of one output tile: its local input (``shape``) zero-filled, the pieces of input
    chunks written in at ``offsets`` (row, column), then one unpadded pk.conv2d."""
    local = _xp(w).zeros(shape, dtype=w.dtype)  # (n, C, rows, cols) of this tile only
    for piece, (r, c) in zip(pieces, offsets):
        local[:, :, r:r + piece.shape[2], c:c + piece.shape[3]] = piece
    return pk.conv2d(local, w, bias, padding=0, **kw)


def _conv_backward_input(dy, w, *, x_shape, **kw):
    return pk.conv2d_backward_input(_contiguous(dy), w, x_shape, **kw)


def _conv_backward_weight(x, dy, *, w_shape, **kw):
    return pk.conv2d_backward_weight(_contiguous(x), _contiguous(dy), w_shape, **kw)


def _matmul(a, b, **kw):
    return pk.matmul(_contiguous(a), _contiguous(b), **kw)


def _empty(like, shape, dtype):
    """An empty chunk (a batch chunk of zero images): pykern refuses empty arrays, so no call."""
    return _xp(like).empty(shape, dtype=dtype)


# --- boundary: validation and the chunkings that cannot work --------------------------------


def _info(name: str, a) -> ArrayInfo | None:
    """What the op's spec reads of an argument (shape, dtype, name) for a whole dask array."""
    if a is None:
        return None
    return ArrayInfo(name, a, "dask", tuple(int(s) for s in a.shape), np.dtype(a.dtype), 0, None)


def _validate(op: str, arrays: dict, params: dict, backend: str, variant):
    """The spec's checks on the whole arrays (the errors pk.<op> gives), and the backend and
    variant names where this process can tell: a worker may have a GPU the client lacks."""
    out_shape, out_dtype, p = SPECS[op].validate({k: _info(k, a) for k, a in arrays.items()}, params)
    on_gpu = any(a is not None and not isinstance(getattr(a, "_meta", a), np.ndarray) for a in arrays.values())
    be = resolve_backend(backend, on_gpu)  # an unknown backend name is refused here
    if variant is not None and availability(be).available:
        get_variant(op, be, variant)  # an unknown variant is refused here
    return tuple(out_shape), np.dtype(out_dtype), p


def _require_dask(name: str, a, op: str):
    if not isinstance(a, da.Array):
        raise TypeError(f"{name}: pykern.dask.{op} takes a dask array, got {type(a).__name__}; wrap it with "
                        f"dask.array.from_array({name}, chunks=...), or call pykern.{op} on it directly")
    return a


def _one_chunk(name: str, a):
    """A parameter array (filter, bias) as a dask array of one chunk: one key, sent once to each
    worker that needs it. NumPy and CuPy arrays are wrapped as they are."""
    if a is None:
        return None
    if isinstance(a, da.Array):
        return a.rechunk(a.shape) if a.npartitions != 1 else a
    return da.from_array(a, chunks=a.shape, asarray=False, name=f"pk-{name}-{tokenize(a)}")


def _whole_axes(name: str, a, axes: dict, why: str):
    """ValueError when ``a`` is split along any of ``axes`` ({axis: its name}), saying why it
    must not be and the rechunk that fixes it."""
    split = {ax: label for ax, label in axes.items() if len(a.chunks[ax]) > 1}
    if split:
        shown = ", ".join(f"{label} into {a.chunks[ax]}" for ax, label in split.items())
        fix = ", ".join(f"{ax}: -1" for ax in split)
        raise ValueError(f"{name}: its chunks split {shown}; {why}. Rechunk first: "
                         f"{name}.rechunk({{{fix}}})")


def _array(name: str, dsk: dict, deps: list, chunks: tuple, meta) -> da.Array:
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[d for d in deps if d is not None])
    return da.Array(graph, name, chunks, meta=meta)


def _meta(like, ndim: int, dtype):
    return da.utils.meta_from_array(like, ndim=ndim, dtype=dtype)


def _tree_sum(dsk: dict, parts: list, out_key: tuple, tmp: str) -> None:
    """dsk[out_key] = the sum of the keys ``parts``, added pairwise in a fixed binary tree
    ((p0 + p1) + (p2 + p3)) + ...: depth log2(len(parts)), and the same order of additions
    whichever partial is ready first."""
    level = 0
    while len(parts) > 2:
        nxt = []
        for i in range(0, len(parts) - 1, 2):
            key = (tmp, *out_key[1:], level, i // 2)
            dsk[key] = (operator.add, parts[i], parts[i + 1])
            nxt.append(key)
        if len(parts) % 2:
            nxt.append(parts[-1])
        parts, level = nxt, level + 1
    dsk[out_key] = (operator.add, *parts) if len(parts) == 2 else parts[0]


# --- the ops --------------------------------------------------------------------------------


def relu(x, *, backend: str = "auto", variant: str | None = None):
    """y = max(x, 0) on a dask array, chunk by chunk (any chunking): pk.relu on each chunk."""
    x = _require_dask("x", x, "relu")
    _, dtype, _ = _validate("relu", {"x": x}, {}, backend, variant)
    return da.map_blocks(_relu, x, backend=backend, variant=variant, dtype=dtype, meta=_meta(x._meta, x.ndim, dtype),
                         name=f"pk-relu-{tokenize(x, backend, variant)}")


def relu_backward(dy, x, *, backend: str = "auto", variant: str | None = None):
    """dx = 0 where x <= 0, else dy (pk.relu_backward), chunk by chunk. dy and x may be chunked
    differently: x is then rechunked to dy's chunks."""
    dy, x = _require_dask("dy", dy, "relu_backward"), _require_dask("x", x, "relu_backward")
    _, dtype, _ = _validate("relu_backward", {"dy": dy, "x": x}, {}, backend, variant)
    if x.chunks != dy.chunks:  # elementwise: any common chunking gives the same result
        x = x.rechunk(dy.chunks)
    return da.map_blocks(_relu_backward, dy, x, backend=backend, variant=variant, dtype=dtype,
                         meta=_meta(dy._meta, dy.ndim, dtype),
                         name=f"pk-relu_backward-{tokenize(dy, x, backend, variant)}")


_CHANNELS_WHY = ("every output element sums over all the channels of its group, and pykern.dask runs one "
                 "pk call per chunk rather than adding partial sums over channel chunks")


def conv2d(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups: int = 1, activation=None,
           backend: str = "auto", variant: str | None = None):
    """pk.conv2d on a dask array x: (N, C, H, W), chunked over the batch and over height and width
    in any way; the channel axis must be one chunk. w: (K, C//groups, R, S) and bias: (K,) (dask,
    NumPy or CuPy arrays) travel as one chunk each.

    The output y: (N, K, P, Q) keeps x's batch chunks; along P and Q each input chunk gives one
    output tile, its boundary the first output row whose window starts in that chunk (so tiles
    are aligned to the stride; an input chunk in which no window starts gives none). Each tile
    is computed from exactly the input rows and columns it reads: the halo comes from the
    neighbouring chunks as slices, the padding as zeros, so the result is the unchunked call's
    for any chunking, and no task holds more than its tile's input.
    """
    x = _require_dask("x", x, "conv2d")
    w, bias = _one_chunk("w", w), _one_chunk("bias", bias)
    params = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups, "activation": activation}
    out_shape, dtype, p = _validate("conv2d", {"x": x, "w": w, "bias": bias}, params, backend, variant)
    _whole_axes("x", x, {1: "the channel axis C"}, _CHANNELS_WHY)
    (sh, sw), (ph, pw), (dh, dw) = p["stride"], p["padding"], p["dilation"]
    _, _, r, s = w.shape
    kw = {"stride": p["stride"], "dilation": p["dilation"], "groups": p["groups"], "activation": p["activation"],
          "backend": backend, "variant": variant}
    rows = axis_tiles(x.chunks[2], out_shape[2], r, sh, ph, dh)
    cols = axis_tiles(x.chunks[3], out_shape[3], s, sw, pw, dw)
    name = f"pk-conv2d-{tokenize(x, w, bias, p, backend, variant)}"
    halo = f"pk-conv2d-halo-{tokenize(name)}"
    wkey = (w.name, 0, 0, 0, 0)
    bkey = None if bias is None else (bias.name, 0)
    c, k = x.shape[1], out_shape[1]
    dsk = {}
    for nb, n in enumerate(x.chunks[0]):
        for ti, rt in enumerate(rows):
            for tj, ct in enumerate(cols):
                out_key = (name, nb, 0, ti, tj)
                if n == 0:
                    dsk[out_key] = (_empty, wkey, (0, k, rt.out[1] - rt.out[0], ct.out[1] - ct.out[0]), dtype)
                    continue
                top = direct_padding(rt, x.chunks[2], r, sh, dh)
                left = direct_padding(ct, x.chunks[3], s, sw, dw)
                if top is not None and left is not None:  # one whole chunk, as it is: no copy
                    src = (x.name, nb, 0, rt.sources[0][0], ct.sources[0][0])
                    dsk[out_key] = (functools.partial(_conv_chunk, padding=(top, left), **kw), src, wkey, bkey)
                    continue
                pieces, offsets = [], []
                for jh, a0, a1, r0 in rt.sources:
                    for jw, b0, b1, c0 in ct.sources:
                        src = (x.name, nb, 0, jh, jw)
                        if (a0, a1, b0, b1) == (0, x.chunks[2][jh], 0, x.chunks[3][jw]):
                            pieces.append(src)
                        else:  # a task of its own, so that only the halo leaves its chunk's worker
                            key = (halo, nb, jh, jw, ti, tj)
                            dsk[key] = (operator.getitem, src, (slice(None), slice(None), slice(a0, a1), slice(b0, b1)))
                            pieces.append(key)
                        offsets.append([r0, c0])
                shape = (n, c, rt.length, ct.length)
                dsk[out_key] = (functools.partial(_conv_tile, shape=shape, **kw), pieces, offsets, wkey, bkey)
    chunks = (x.chunks[0], (k,), tuple(t.out[1] - t.out[0] for t in rows), tuple(t.out[1] - t.out[0] for t in cols))
    return _array(name, dsk, [x, w, bias], chunks, _meta(x._meta, 4, dtype))


_GRAD_WHY = "the gradients are chunked over the batch only (each image's whole gradient is one pk call)"


def conv2d_backward_input(dy, w, x_shape, *, stride=1, padding=0, dilation=1, groups: int = 1,
                          backend: str = "auto", variant: str | None = None):
    """pk.conv2d_backward_input on a dask array dy: (N, K, P, Q) chunked over the batch only;
    w (dask, NumPy or CuPy) travels as one chunk. dx: x_shape, with dy's batch chunks."""
    dy = _require_dask("dy", dy, "conv2d_backward_input")
    w = _one_chunk("w", w)
    params = {"x_shape": x_shape, "stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    out_shape, dtype, p = _validate("conv2d_backward_input", {"dy": dy, "w": w}, params, backend, variant)
    _whole_axes("dy", dy, {1: "the channel axis K", 2: "the height P", 3: "the width Q"}, _GRAD_WHY)
    kw = {k: p[k] for k in ("stride", "padding", "dilation", "groups")} | {"backend": backend, "variant": variant}
    name = f"pk-conv2d_backward_input-{tokenize(dy, w, p, backend, variant)}"
    _, c, h, wd = out_shape
    dsk = {}
    for nb, n in enumerate(dy.chunks[0]):
        if n == 0:
            dsk[(name, nb, 0, 0, 0)] = (_empty, (w.name, 0, 0, 0, 0), (0, c, h, wd), dtype)
            continue
        dsk[(name, nb, 0, 0, 0)] = (functools.partial(_conv_backward_input, x_shape=(n, c, h, wd), **kw),
                                    (dy.name, nb, 0, 0, 0), (w.name, 0, 0, 0, 0))
    return _array(name, dsk, [dy, w], (dy.chunks[0], (c,), (h,), (wd,)), _meta(dy._meta, 4, dtype))


def conv2d_backward_weight(x, dy, w_shape, *, stride=1, padding=0, dilation=1, groups: int = 1,
                           backend: str = "auto", variant: str | None = None):
    """pk.conv2d_backward_weight on dask arrays x: (N, C, H, W) and dy: (N, K, P, Q), both
    chunked over the batch only, in the same chunks. One partial dw per batch chunk; the
    partials are added in a fixed binary tree, so the result does not depend on which chunk
    finishes first. dw: w_shape, one chunk."""
    x = _require_dask("x", x, "conv2d_backward_weight")
    dy = _require_dask("dy", dy, "conv2d_backward_weight")
    params = {"w_shape": w_shape, "stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    out_shape, dtype, p = _validate("conv2d_backward_weight", {"x": x, "dy": dy}, params, backend, variant)
    _whole_axes("x", x, {1: "the channel axis C", 2: "the height H", 3: "the width W"}, _GRAD_WHY)
    _whole_axes("dy", dy, {1: "the channel axis K", 2: "the height P", 3: "the width Q"}, _GRAD_WHY)
    if x.chunks[0] != dy.chunks[0]:
        raise ValueError(f"x and dy split the batch differently ({x.chunks[0]} and {dy.chunks[0]}): each partial "
                         f"dw needs the x and dy of the same images. Rechunk one to the other's: "
                         f"dy.rechunk({{0: x.chunks[0]}})")
    kw = {k: p[k] for k in ("stride", "padding", "dilation", "groups")} | {"backend": backend, "variant": variant}
    tok = tokenize(x, dy, p, backend, variant)
    name, part = f"pk-conv2d_backward_weight-{tok}", f"pk-conv2d_backward_weight-part-{tok}"
    dsk, parts = {}, []
    for nb, n in enumerate(x.chunks[0]):
        if n == 0:
            continue  # no images, no contribution
        dsk[(part, nb)] = (functools.partial(_conv_backward_weight, w_shape=out_shape, **kw),
                           (x.name, nb, 0, 0, 0), (dy.name, nb, 0, 0, 0))
        parts.append((part, nb))
    if not parts:
        raise ValueError(f"x: (N, C, H, W) = {x.shape} has no images")
    _tree_sum(dsk, parts, (name, 0, 0, 0, 0), f"{name}-sum")
    return _array(name, dsk, [x, dy], tuple((d,) for d in out_shape), _meta(x._meta, 4, dtype))


def matmul(a, b, *, transpose_a: bool = False, transpose_b: bool = False, backend: str = "auto",
           variant: str | None = None):
    """pk.matmul on dask arrays, blocked over M, N and K: op(a): (M, K) and op(b): (K, N) (op: the
    transpose where the flag is set, read in place by every block) must split K the same way.
    Block (i, j) of c is the sum over k of pk.matmul(a[i, k], b[k, j]), added in a fixed binary
    tree over k, so the result does not depend on which block finishes first."""
    a, b = _require_dask("a", a, "matmul"), _require_dask("b", b, "matmul")
    params = {"transpose_a": transpose_a, "transpose_b": transpose_b}
    out_shape, dtype, p = _validate("matmul", {"a": a, "b": b}, params, backend, variant)
    ta, tb = bool(p.get("transpose_a")), bool(p.get("transpose_b"))
    m_chunks, ka = (a.chunks[1], a.chunks[0]) if ta else a.chunks
    kb, n_chunks = (b.chunks[1], b.chunks[0]) if tb else b.chunks
    if ka != kb:
        ax_a, ax_b = (0 if ta else 1), (1 if tb else 0)
        raise ValueError(f"a and b split K differently (a's axis {ax_a}: {ka}, b's axis {ax_b}: {kb}): each block "
                         f"product needs the same K range from both. Rechunk one to the other's: "
                         f"b.rechunk({{{ax_b}: a.chunks[{ax_a}]}})")
    kw = {"backend": backend, "variant": variant} | ({"transpose_a": True} if ta else {}) | \
        ({"transpose_b": True} if tb else {})
    tok = tokenize(a, b, p, backend, variant)
    name, part = f"pk-matmul-{tok}", f"pk-matmul-part-{tok}"
    fn = functools.partial(_matmul, **kw)
    dsk = {}
    for i, m in enumerate(m_chunks):
        for j, n in enumerate(n_chunks):
            if m == 0 or n == 0 or not any(ka):
                dsk[(name, i, j)] = (_empty, (a.name, 0, 0), (m, n), dtype)
                continue
            parts = []
            for kk, size in enumerate(ka):
                if size == 0:
                    continue
                akey = (a.name, kk, i) if ta else (a.name, i, kk)
                bkey = (b.name, j, kk) if tb else (b.name, kk, j)
                dsk[(part, i, j, kk)] = (fn, akey, bkey)
                parts.append((part, i, j, kk))
            _tree_sum(dsk, parts, (name, i, j), f"{name}-sum")
    return _array(name, dsk, [a, b], (m_chunks, n_chunks), _meta(a._meta, 2, dtype))

"""The CUDA C++ backward ops and matmul's transpose flags, beyond the registry-generated tests
(test_correctness.py, test_properties.py, test_hostile.py and test_backward.py run every variant
already): the `takes` column of matmul's table and the binding's refusal of flags a row does not
take, and each new kernel under the simulator's other thread orders (a missing barrier can pass
in one order and fail in another)."""
import numpy as np
import pytest
from conftest import seed_for

import pykern as pk
from pykern._backends import cuda_simulator_enabled
from pykern.cuda._launch import table

# The rungs whose table row takes the transpose flags: read from the table's takes column.
TRANSPOSING = {r["name"] for r in table("matmul") if r["takes"]}
ORDERS = [("reverse", 0), ("random", 1), ("random", 2)]
sim_only = pytest.mark.skipif(not cuda_simulator_enabled(),
                              reason="PYKERN_CUDA_SIM is not set: the cuda backend is a real GPU or absent")


def _ints(rng, shape, dtype=np.float32):
    x = rng.integers(-4, 5, size=shape).astype(np.float64)
    x[x == 0] = 1  # no zeros: an element never read would go unnoticed
    return x.astype(dtype)


def test_matmul_table_lists_the_flags_of_the_rungs_that_take_them():
    """The registry lists each row's takes column; the transposing rungs take both flags, and they
    are the first rungs of the ladder (the tiled ones past them read plain layouts only)."""
    rows = {v.name: v.takes for v in pk.variants("matmul", "cuda")}
    assert rows == {r["name"]: tuple(r["takes"]) for r in table("matmul")}
    assert TRANSPOSING and all(rows[n] == ("transpose_a", "transpose_b") for n in TRANSPOSING)
    names = list(rows)
    assert set(names[:len(TRANSPOSING)]) == TRANSPOSING, names


@pytest.mark.parametrize("name", sorted({v.name for v in pk.variants("matmul", "cuda")} - TRANSPOSING))
def test_binding_refuses_a_flag_its_row_does_not_take(name):
    """Below the dispatch's own refusal: the bound kernel checks its row's takes before launching,
    so no caller reaches a kernel that would read a transposed operand as a plain one."""
    from pykern.cuda._launch import kernel
    row = next(v for v in pk.variants("matmul", "cuda") if v.name == name)
    try:
        bound = kernel(f"matmul_{name}")
    except RuntimeError as e:
        pytest.skip(str(e))
    for flags in ((1, 0), (0, 1)):
        with pytest.raises(ValueError, match=rf"^matmul_{name}: takes no transposed operands"):
            bound((0, 0), 0, (2, 2, 2, *flags), row.dtypes[0], 0)


def _orders():
    return pytest.mark.parametrize("order,seed", ORDERS, ids=[f"{o}{s or ''}" for o, s in ORDERS])


@sim_only
@_orders()
@pytest.mark.parametrize("name", sorted(TRANSPOSING))
def test_transposed_matmul_under_other_thread_orders(sim, name, order, seed):
    """smem_tiled writes a transposed operand's tile column-wise: every flag pair, 70x45x133."""
    sim.sim_configure(order=order, seed=seed)
    rng = np.random.default_rng(seed_for("transposed orders", name, order, seed))
    a, b = _ints(rng, (70, 45)), _ints(rng, (45, 133))
    for ta in (False, True):
        for tb in (False, True):
            sa = np.ascontiguousarray(a.T) if ta else a
            sb = np.ascontiguousarray(b.T) if tb else b
            c = pk.matmul(sa, sb, transpose_a=ta, transpose_b=tb, backend="cuda", variant=name)
            np.testing.assert_array_equal(c.astype(np.float64), a.astype(np.float64) @ b.astype(np.float64),
                                          err_msg=f"transpose_a={ta} transpose_b={tb}")


GEOMETRY = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)


@sim_only
@_orders()
@pytest.mark.parametrize("variant", [pytest.param(v, id=v.key) for op in ("conv2d_backward_input",
                                                                           "conv2d_backward_weight")
                                     for v in pk.variants(op, "cuda")])
def test_conv2d_gradients_under_other_thread_orders(sim, variant, order, seed):
    sim.sim_configure(order=order, seed=seed)
    rng = np.random.default_rng(seed_for("orders", variant.key, order, seed))
    x, w = _ints(rng, (2, 4, 7, 8)), _ints(rng, (6, 2, 3, 2))
    dy = _ints(rng, pk.conv2d(x, w, **GEOMETRY, backend="numpy").shape)
    f64 = [a.astype(np.float64) for a in (x, w, dy)]
    if variant.op == "conv2d_backward_input":
        got = pk.conv2d_backward_input(dy, w, x.shape, **GEOMETRY, backend="cuda", variant=variant.name)
        ref = pk.conv2d_backward_input(f64[2], f64[1], x.shape, **GEOMETRY, backend="numpy", variant="reference")
    else:
        got = pk.conv2d_backward_weight(x, dy, w.shape, **GEOMETRY, backend="cuda", variant=variant.name)
        ref = pk.conv2d_backward_weight(f64[0], f64[2], w.shape, **GEOMETRY, backend="numpy", variant="reference")
    np.testing.assert_array_equal(got, ref.astype(np.float32))


@sim_only
@_orders()
def test_relu_backward_under_other_thread_orders(sim, order, seed):
    sim.sim_configure(order=order, seed=seed)
    rng = np.random.default_rng(seed_for("relu_backward orders", order, seed))
    dy, x = _ints(rng, (3, 333)), _ints(rng, (3, 333))
    for v in pk.variants("relu_backward", "cuda"):
        got = pk.relu_backward(dy, x, backend="cuda", variant=v.name)
        np.testing.assert_array_equal(got, np.where(x > 0, dy, 0), err_msg=v.key)

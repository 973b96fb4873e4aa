"""An op is the unit (issue 20): its spec is all the benchmarks need to know of it.

A toy op, ``scale2`` (y = 2x), is defined here at run time with none of OpSpec's benchmark
methods, given one NumPy variant, and benchmarked through the command line's own entry point:
it runs on the defaults (its largest test cases, its case ids as --sizes, no baselines, a
generic plot axis). The ops already there still benchmark beside it: adding an op once broke
`pykern bench` for every op with a KeyError in pykern/benchmark/.
"""
import json

import numpy as np
import pytest

from pykern import _registry, benchmark as bench, cli, ops
from pykern.benchmark import run as bench_run
from pykern.ops._spec import OpSpec, random_array


class Scale2Spec(OpSpec):
    """y = 2x elementwise, any shape; declares no benchmark cases, sizes, plot axis or baselines."""

    name = "scale2"
    inputs = ("x",)
    rate_unit = "GB/s"

    def validate(self, infos, params):
        return infos["x"].shape, self.same_dtype(infos), params

    def reference(self, arrays, params):
        return 2.0 * arrays["x"].astype(np.float64)

    def magnitude(self, arrays, params):
        return np.abs(self.reference(arrays, params))

    def make_inputs(self, case, dtype, rng):
        return {"x": random_array(rng, case["shape"], dtype)}, {}

    def test_cases(self, backend, simulator=False):
        return [{"shape": (n,)} for n in (1, 7, 1000, 64)]

    def demo_case(self, simulator=False):
        return {"shape": (1000,)}

    def flops(self, case):
        return float(np.prod(case["shape"]))

    def bytes_moved(self, case, itemsize):
        return 2.0 * np.prod(case["shape"]) * itemsize  # read x, write y


@pytest.fixture
def scale2(monkeypatch):
    """scale2 in pykern.ops.SPECS/OPS with one NumPy variant, for one test."""
    spec = Scale2Spec()
    monkeypatch.setitem(ops.SPECS, spec.name, spec)
    monkeypatch.setattr(ops, "OPS", ops.OPS + (spec.name,))

    @_registry.register(spec.name, "numpy", dtypes=("float32", "float64"), default=True)
    def doubled(x, y):
        """np.multiply(x, 2, out=y)."""
        np.multiply(x, 2, out=y)

    yield spec
    _registry.unregister(spec.name, "numpy", "doubled")


def run(argv, capsys):
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_new_op_is_benchmarked_on_the_defaults_of_its_spec(scale2, tmp_path, capsys):
    path = tmp_path / "b.json"
    code, out, err = run(["bench", "--op", "scale2", "--backend", "numpy", "--quick", "--reps", "3",
                          "--no-progress", "--json", str(path)], capsys)
    assert code == 0, (out, err)
    rows = json.loads(path.read_text())["entries"]
    # its largest three test cases, smallest first; no library baseline
    assert [(r["key"], r["case_id"], r["status"]) for r in rows] == [
        ("numpy/doubled", cid, "ok") for cid in ("shape7", "shape64", "shape1000")]
    assert all(r["unit"] == "GB/s" and r["rate"] > 0 and r["check"]["ok"] for r in rows)
    assert "scale2 shape64 float32 on the CPU" in out and "numpy/doubled" in out


def test_a_new_op_reads_its_case_ids_as_sizes(scale2, tmp_path, capsys):
    assert bench.parse_size("scale2", "shape64") == {"shape": (64,)}
    assert bench.parse_size("scale2", "shape2^6") == {"shape": (64,)}
    with pytest.raises(ValueError) as e:
        bench.parse_size("scale2", "64")
    assert str(e.value) == f"sizes: '64' is not a size for scale2; expected {bench.SIZE_FORMS['scale2']}"
    assert "shape1000" in str(e.value) and "scale2's spec declares no other size forms" in str(e.value)
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    assert "; scale2 a case id as the tables print it" in " ".join(capsys.readouterr().out.split())
    # its own grammar: one plain list is not read as sizes of relu too
    with pytest.raises(ValueError, match="read sizes differently"):
        bench.select([("op", "relu,scale2"), ("sizes", "64")])
    assert bench.select([("sizes", "scale2=shape7,shape64")])[1] == {"scale2": [{"shape": (7,)}, {"shape": (64,)}]}

    path = tmp_path / "c.json"
    code, out, err = run(["compare", "--op", "scale2", "--sizes", "shape64,shape1000", "--quick", "--no-progress",
                          "--json", str(path)], capsys)
    assert code == 0, (out, err)
    (res,) = json.loads(path.read_text())["ops"]
    assert res["op"] == "scale2" and res["cpu"] == "numpy/doubled"
    assert [r["case_id"] for r in res["rows"]] == ["shape64", "shape1000"] and all(r["cpu_ok"] for r in res["rows"])


def test_a_new_op_is_plotted_with_the_default_axis(scale2, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    doc = bench.sweep(["scale2"], ["numpy"], None, {"scale2": [{"shape": (64,)}, {"shape": (1000,)}]},
                      quick=True, progress=False, max_reps=3)
    fig = bench.bench_figure(doc)
    try:
        (ax,) = fig.axes
        assert ax.get_xlabel() == "case"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["shape64", "shape1000"]
    finally:
        bench.pyplot().close(fig)


def test_the_ops_already_there_still_benchmark_beside_a_new_one(scale2, capsys, monkeypatch):
    """Every op, scale2 among them, is planned on its default cases, and a sweep and a comparison
    of every op (each on its smallest test case) run through the command line."""
    entries, _ = bench.plan(None, ["numpy"], None, None)
    assert {e.target.op for e in entries} == set(ops.SPECS)
    for op, spec in ops.SPECS.items():
        assert bench.BENCH_CASES[op]["cpu"] == spec.bench_cases("cpu") and bench.COMPARE_CASES[op]
        assert bench.SIZE_FORMS[op] and bench.BENCH_LATE_CASES[op] is not None
    assert {b.op for b in bench.all_baselines()} == set(ops.SPECS) - {"scale2"}
    smallest = ";".join(f"{op}={spec.case_id(min(spec.test_cases('numpy'), key=spec.work))}"
                        for op, spec in ops.SPECS.items())
    # the sweep's ceilings are not what this checks: no 1 GiB copies on a shared machine
    monkeypatch.setattr(bench_run, "measure_ceilings", lambda needed, quick=False: {})
    code, out, err = run(["bench", "--backend", "numpy", "--sizes", smallest, "--quick", "--reps", "3",
                          "--no-baselines", "--no-progress"], capsys)
    assert code == 0, (out, err)
    for op in ops.SPECS:
        assert f"\n{op} " in out, op
    code, out, err = run(["compare", "--sizes", smallest, "--quick", "--no-progress"], capsys)
    assert code == 0, (out, err)
    for op in ops.SPECS:
        assert f"\n{op}: CPU numpy/" in out, op


def test_a_new_op_is_called_as_pk_op(scale2):
    """No function to write in pykern/__init__.py: pk.<op> takes the spec's inputs positionally
    and its parameters by keyword, and refuses a wrong count of arrays by name."""
    import pykern as pk
    x = np.random.default_rng(2).standard_normal(7).astype(np.float32)
    np.testing.assert_array_equal(pk.scale2(x), 2 * x)
    y = np.empty_like(x)
    assert pk.scale2(x, out=y, backend="numpy", variant="doubled") is y
    assert "scale2" in (pk.scale2.__doc__ or "") and pk.scale2.__name__ == "scale2"
    with pytest.raises(TypeError, match=r"scale2\(\) takes the arrays x, got 2"):
        pk.scale2(x, x)
    with pytest.raises(AttributeError, match="no attribute 'scale3'"):
        pk.scale3

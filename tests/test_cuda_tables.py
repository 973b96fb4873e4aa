"""The CUDA C++ variant tables (the last section of each kernels/<op>.cu) against the registry
and the compiled extensions: every row registered once, in order, with its technique, dtypes and
default; the build-time copy that registration reads (pykern/cuda/_variant_tables.py) equal to
what each compiled module binds; each bound launcher refusing dtypes outside its row; and an
install with neither extension listing the same variants."""
import json
import os
import subprocess
import sys
import tempfile

import pytest

import pykern as pk
from pykern.cuda._launch import source_tables, table

OPS = ("relu", "matmul", "conv2d", "relu_backward", "conv2d_backward_input", "conv2d_backward_weight")
DTYPES = ("float16", "bfloat16", "float32", "float64")


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter importing the same pykern as this session."""
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(pk.__file__)), **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=env, cwd=tempfile.gettempdir())


@pytest.mark.parametrize("op", OPS)
def test_every_row_is_registered_once_in_table_order(op):
    rows = table(op)
    assert rows, f"kernels/{op}.cu's variant table was not copied at build time"
    names = [r["name"] for r in rows]
    assert len(set(names)) == len(names), names
    assert sum(r["default"] for r in rows) == 1, "exactly one default row"
    registered = pk.variants(op, "cuda")
    assert [v.name for v in registered] == names
    for row, v in zip(rows, registered):
        assert row["kernel"] == f"{op}_{v.name}", "the binding's name is <op>_<variant name>"
        assert row["dtypes"] and set(row["dtypes"]) <= set(DTYPES), row
        assert (v.technique, list(v.dtypes), v.default, v.error_model) == \
            (row["technique"], row["dtypes"], row["default"], "terms")
        assert "\n" not in v.technique and v.technique.strip() == v.technique


def _compiled_tables(module: str):
    code = (f"import json, pykern.{module} as m\n"
            f"print(json.dumps({{op: [dict(r, bound=callable(getattr(m, r['kernel'], None))) "
            f"for r in getattr(m, op + '_variants')] for op in {OPS!r}}}))")
    proc = run_python(code)
    if proc.returncode != 0 and "No module named" in proc.stderr:
        pytest.skip(f"pykern.{module} was not built")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("module", ["_cuda", "_cuda_sim"])
def test_build_time_copy_equals_the_compiled_table(module):
    """Each module binds every row (reading the table touches no driver); the copy that
    registration reads, made from the .cu sources by csrc/variant_tables.py, says the same."""
    compiled = _compiled_tables(module)
    for op in OPS:
        assert all(r.pop("bound") for r in compiled[op]), f"pykern.{module}: a row of {op} is not bound"
        assert compiled[op] == table(op), f"pykern.{module}: {op}'s table differs from the build-time copy"


def test_the_installed_copy_matches_the_sources_and_a_source_tree_reads_them():
    """A source tree that was never built reads kernels/*.cu itself (the same reader as the
    build); with this checkout's sources that gives the installed copy, unless the install is
    older than the sources (then reinstall)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isdir(os.path.join(repo, "kernels")):
        pytest.skip("not run from a source checkout")
    from pykern.cuda import _variant_tables
    assert source_tables(repo) == _variant_tables.TABLES
    assert source_tables(os.path.join(repo, "tests")) == {}  # no csrc/ there: nothing to read


GOOD_ROW = '{"a", kF32 | kF64, true, launch_a, "Technique " "of a."},'


@pytest.mark.parametrize("row,error", [
    ('{"b", kF32 | kF99, false, launch_b, "b"},', r"row 'b': unknown dtypes \['kF99'\]"),
    ('{"b", kF32, false, launch_b, kTechnique},', r"read 1 of the 2 rows"),
    ('{"a", kF32, false, launch_b, "again"},', r"names must be unique"),
    ('{"b", kF32, true, launch_b, "second default"},', r"exactly one row the default"),
    ('{"b", kF32, false, launch_b, "b", kTransposeC},', r"row 'b': unknown takes \['kTransposeC'\]"),
])
def test_the_table_reader_refuses_rows_it_cannot_read(tmp_path, row, error):
    """What the build stops on (csrc/variant_tables.py), rather than registering a wrong row."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isfile(os.path.join(repo, "csrc", "variant_tables.py")):
        pytest.skip("not run from a source checkout")
    (tmp_path / "csrc").mkdir()
    (tmp_path / "kernels").mkdir()
    (tmp_path / "csrc" / "variant_tables.py").write_text(
        open(os.path.join(repo, "csrc", "variant_tables.py")).read())
    cu = "constexpr Variant<L> kVariants[] = {\n    // name dtypes\n    %s\n    %s\n};\n"
    (tmp_path / "kernels" / "op.cu").write_text(cu % (GOOD_ROW, ""))
    assert source_tables(tmp_path) == {"op": [{"name": "a", "technique": "Technique of a.",
                                               "dtypes": ["float32", "float64"], "default": True,
                                               "kernel": "op_a", "takes": []}]}
    takes = '{"t", kF32, false, launch_t, "Takes" " both.", kTransposeB | kTransposeA},'
    (tmp_path / "kernels" / "op.cu").write_text(cu % (GOOD_ROW, takes))
    assert source_tables(tmp_path)["op"][1]["takes"] == ["transpose_a", "transpose_b"]  # in bit order
    (tmp_path / "kernels" / "op.cu").write_text(cu % (GOOD_ROW, row))
    with pytest.raises(ValueError, match=error):
        source_tables(tmp_path)


def _bound_args(op: str, dtype: str):
    """Arguments a bound launcher accepts up to its dtype check (null pointers, a valid shape)."""
    if op == "relu":
        return (0, 0, 4, dtype, 0)
    if op == "matmul":
        return (0, 0, 0, 4, 4, 4, dtype, 0)
    if op == "relu_backward":
        return (0, 0, 0, 4, dtype, 0)
    if op.startswith("conv2d_backward"):
        return (0, 0, 0, 2, 4, 9, 9, 6, 3, 3, 9, 9, 1, 1, 1, 1, 1, 1, 1, dtype, 0)
    return (0, 0, 0, 0, 2, 4, 9, 9, 6, 3, 3, 9, 9, 1, 1, 1, 1, 1, 1, 1, False, dtype, 0)


@pytest.mark.parametrize("op", OPS)
def test_a_launcher_refuses_dtypes_outside_its_row(op):
    """The binding checks the row's dtypes before the launcher runs: a clear TypeError, never a
    kernel reading the buffers as another type (the pointers here are null)."""
    from pykern._device import ext
    try:
        mod = ext()
    except RuntimeError as e:
        pytest.skip(str(e))
    for row in table(op):
        for dtype in DTYPES:
            if dtype in row["dtypes"]:
                continue
            takes = ", ".join(row["dtypes"])
            with pytest.raises(TypeError, match=rf"^{row['kernel']}: unsupported dtype {dtype} \(takes {takes}\)$"):
                getattr(mod, row["kernel"])(*_bound_args(op, dtype))
        with pytest.raises(TypeError, match=f"unsupported dtype 'int32'"):
            getattr(mod, row["kernel"])(*_bound_args(op, "int32"))


NO_EXTENSION = """
import json, sys
sys.modules["pykern._cuda"] = sys.modules["pykern._cuda_sim"] = None  # as if neither was built
import pykern as pk
print(json.dumps([v.as_dict() for v in pk.variants(backend="cuda")]))
a = pk.backends()["cuda"]
print(json.dumps([a.available, a.reason]))
"""


@pytest.mark.parametrize("sim", ["0", "1"])
def test_without_either_extension_the_same_variants_are_listed(sim):
    proc = run_python(NO_EXTENSION, PYKERN_CUDA_SIM=sim)
    assert proc.returncode == 0, proc.stderr
    listed, availability = proc.stdout.strip().splitlines()[-2:]
    assert json.loads(listed) == [v.as_dict() for v in pk.variants(backend="cuda")]
    available, reason = json.loads(availability)
    # "... was not built", or, where this copy hides an installed one, the note that says so
    assert not available and "pykern._cuda" in reason, reason

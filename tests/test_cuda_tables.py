"""The CUDA C++ variant tables (each registered by PYKERN_TABLE in kernels/) against the registry,
the op specs and the compiled extensions: every row registered once, in order, with its technique,
dtypes and default; the build-time copy that registration reads (pykern/cuda/_variant_tables.py)
equal to what each compiled module binds; each table's inputs and dims fields equal to its spec's;
the generic binder refusing what would make a direct call unsafe (dtype outside its row, wrong
pointer or dims counts, null pointers); and an install with neither extension listing the same
variants. The ops are the tables': no list here to extend."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import pykern as pk
from pykern.cuda._launch import info, ops, source_copy, source_tables, table
from pykern.ops import SPECS

OPS = tuple(ops())
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


def test_every_op_with_cuda_variants_has_a_table():
    assert OPS, "no variant table was copied at build time"
    assert set(OPS) <= set(SPECS), "a table for an op without a spec"
    assert {v.op for v in pk.variants(backend="cuda")} == set(OPS)


def _compiled_tables(module: str):
    code = (f"import json, pykern.{module} as m\n"
            f"print(json.dumps({{op: [dict(r, bound=callable(getattr(m, r['kernel'], None))) "
            f"for r in getattr(m, op + '_variants')] + [getattr(m, op + '_info'), list(getattr(m, op + '_fields')), "
            f"sorted(m.TABLES)] for op in {OPS!r}}}))")
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
        *rows, op_info, fields, ops_bound = compiled[op]
        assert ops_bound == sorted(OPS), f"pykern.{module} registers other tables than the build-time copy"
        assert all(r.pop("bound") for r in rows), f"pykern.{module}: a row of {op} is not bound"
        assert rows == table(op), f"pykern.{module}: {op}'s table differs from the build-time copy"
        assert op_info == info(op), f"pykern.{module}: {op}'s registration line differs from the build-time copy"
        assert fields == list(SPECS[op].dims_fields), \
            f"pykern.{module}: {op}'s dims fields (C++ PYKERN_DIMS) differ from its spec's dims_fields"


@pytest.mark.parametrize("op", OPS)
def test_a_table_takes_its_specs_inputs_and_dims(op):
    """The registration line names the spec's inputs in order, with the same optional ones, and
    the spec builds dims of its dims_fields' length for its own test cases."""
    spec = SPECS[op]
    assert info(op)["inputs"] == list(spec.inputs)
    assert info(op)["optional"] == list(spec.optional)
    assert spec.dims_fields and len(set(spec.dims_fields)) == len(spec.dims_fields)
    from pykern._dispatch import prepare
    v = pk.variants(op, "cuda")[0]
    case = spec.test_cases("cuda", simulator=True)[0]
    arrays, params = spec.make_inputs(case, v.dtypes[0], np.random.default_rng(0))
    try:
        prepared = prepare(op, arrays, params, backend="cuda", variant=v.name)
    except RuntimeError as e:  # the backend is unavailable here: the dims need only the problem
        pytest.skip(str(e))
    dims = spec.dims(prepared.problem)
    assert len(dims) == len(spec.dims_fields) and all(isinstance(d, int) for d in dims), dims


def test_the_base_spec_names_an_op_without_dims():
    from pykern.ops._spec import OpSpec

    class Plain(OpSpec):
        name = "plain"
    with pytest.raises(NotImplementedError, match="op 'plain' has no dims"):
        Plain().dims(None)


def test_the_installed_copy_matches_the_sources_and_a_source_tree_reads_them():
    """A source tree that was never built reads kernels/*.cu itself (the same reader as the
    build); with this checkout's sources that gives the installed copy, unless the install is
    older than the sources (then reinstall)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isdir(os.path.join(repo, "kernels")):
        pytest.skip("not run from a source checkout")
    from pykern.cuda import _variant_tables
    assert source_copy(repo) == (_variant_tables.TABLES, _variant_tables.INFO)
    assert source_tables(os.path.join(repo, "tests")) == {}  # no csrc/ there: nothing to read


GOOD_ROW = '{"a", kF32 | kF64, true, launch_a, "Technique " "of a."},'


@pytest.fixture
def reader_tree(tmp_path):
    """A tree with csrc/variant_tables.py (this checkout's) and an empty kernels/, for the reader."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isfile(os.path.join(repo, "csrc", "variant_tables.py")):
        pytest.skip("not run from a source checkout")
    (tmp_path / "csrc").mkdir()
    (tmp_path / "kernels").mkdir()
    (tmp_path / "csrc" / "variant_tables.py").write_text(
        open(os.path.join(repo, "csrc", "variant_tables.py")).read())
    return tmp_path


@pytest.mark.parametrize("row,error", [
    ('{"b", kF32 | kF99, false, launch_b, "b"},', r"row 'b': unknown dtypes \['kF99'\]"),
    ('{"b", kF32, false, launch_b, kTechnique},', r"read 1 of the 2 rows"),
    ('{"a", kF32, false, launch_b, "again"},', r"names must be unique"),
    ('{"b", kF32, true, launch_b, "second default"},', r"exactly one row the default"),
    ('{"b", kF32, false, launch_b, "b", kTransposeC},', r"row 'b': unknown takes \['kTransposeC'\]"),
])
def test_the_table_reader_refuses_rows_it_cannot_read(reader_tree, row, error):
    """What the build stops on (csrc/variant_tables.py), rather than registering a wrong row."""
    cu = ("constexpr Variant kVariants[] = {\n    // name dtypes\n    %s\n    %s\n};\n\n"
          'PYKERN_TABLE(op, OpDims, "x, b?", kVariants, op_unsupported);\n')
    (reader_tree / "kernels" / "op.cu").write_text(cu % (GOOD_ROW, ""))
    assert source_copy(reader_tree) == ({"op": [{"name": "a", "technique": "Technique of a.",
                                             "dtypes": ["float32", "float64"], "default": True,
                                             "kernel": "op_a", "takes": []}]},
                                     {"op": {"inputs": ["x", "b"], "optional": ["b"], "unsupported": True}})
    (reader_tree / "kernels" / "family").mkdir()  # a kernel family's file without a table is skipped
    (reader_tree / "kernels" / "family" / "rung.cu").write_text("void launch_a(const Call& c) {}\n")
    assert list(source_tables(reader_tree)) == ["op"]
    takes = '{"t", kF32, false, launch_t, "Takes" " both.", kTransposeB | kTransposeA},'
    (reader_tree / "kernels" / "op.cu").write_text(cu % (GOOD_ROW, takes))
    assert source_tables(reader_tree)["op"][1]["takes"] == ["transpose_a", "transpose_b"]  # in bit order
    (reader_tree / "kernels" / "op.cu").write_text(cu % (GOOD_ROW, row))
    with pytest.raises(ValueError, match=error):
        source_tables(reader_tree)


@pytest.mark.parametrize("text,error", [
    ('constexpr Variant kRows[] = {\n    %s\n};\n' % GOOD_ROW, r"expected one registration line"),
    ('constexpr Variant kRows[] = {\n    %s\n};\nPYKERN_TABLE(op, D, "x", kOther);\n' % GOOD_ROW,
     r"expected one variant table \(constexpr Variant kOther"),
    ('PYKERN_TABLE(op, D, "x", kRows);\n', r"expected one variant table"),
    ('constexpr Variant kRows[] = {\n    %s\n};\nPYKERN_TABLE(op, D, kRows);\n' % GOOD_ROW,
     r"expected one registration line"),
])
def test_the_table_reader_refuses_a_table_without_its_registration(reader_tree, text, error):
    (reader_tree / "kernels" / "op.cu").write_text(text)
    with pytest.raises(ValueError, match=error):
        source_tables(reader_tree)
    good = 'constexpr Variant kRows[] = {\n    %s\n};\nPYKERN_TABLE(op, D, "x", kRows);\n' % GOOD_ROW
    (reader_tree / "kernels" / "op.cu").write_text(good)
    (reader_tree / "kernels" / "again.cu").write_text(good)
    with pytest.raises(ValueError, match=r"a second table for 'op'"):
        source_tables(reader_tree)


def _bound_args(op: str, dtype: str):
    """Arguments a bound launcher accepts up to its dtype check: null pointers, dims of the right
    length (the dtype is checked first)."""
    return (tuple(0 for _ in info(op)["inputs"]), 0, tuple(1 for _ in SPECS[op].dims_fields), dtype, 0)


@pytest.mark.parametrize("op", OPS)
def test_a_launcher_refuses_dtypes_outside_its_row(op):
    """The binder checks the row's dtypes before the launcher runs: a clear TypeError, never a
    kernel reading the buffers as another type (the pointers here are null)."""
    mod = _ext()
    for row in table(op):
        for dtype in DTYPES:
            if dtype in row["dtypes"]:
                continue
            takes = ", ".join(row["dtypes"])
            with pytest.raises(TypeError, match=rf"^{row['kernel']}: unsupported dtype {dtype} \(takes {takes}\)$"):
                getattr(mod, row["kernel"])(*_bound_args(op, dtype))
        with pytest.raises(TypeError, match=f"unsupported dtype 'int32'"):
            getattr(mod, row["kernel"])(*_bound_args(op, "int32"))


def _ext():
    from pykern._device import ext
    try:
        return ext()
    except RuntimeError as e:
        pytest.skip(str(e))


def _valid_dims(op: str, variant):
    """The dims of a real small call of ``variant``: past every shape rule."""
    from pykern._dispatch import prepare
    spec = SPECS[op]
    case = spec.test_cases("cuda", simulator=True)[0]
    arrays, params = spec.make_inputs(case, variant.dtypes[0], np.random.default_rng(1))
    prepared = prepare(op, arrays, params, backend="cuda", variant=variant.name)
    return spec.dims(prepared.problem)


@pytest.mark.parametrize("op", OPS)
def test_the_binder_refuses_an_unsafe_direct_call(op):
    """What guards memory for a caller of a bound launcher who bypassed Python's checks, each a
    clear error naming the row, raised before the launcher runs: dims of the wrong length or
    negative, an unknown dtype, a dtype outside the row, the wrong number of input pointers, a null pointer
    where the op requires an array, a config on a row without configurations."""
    mod = _ext()
    spec = SPECS[op]
    inputs, optional = info(op)["inputs"], info(op)["optional"]
    fields = ", ".join(spec.dims_fields)
    for v in pk.variants(op, "cuda"):
        bound = getattr(mod, f"{op}_{v.name}")
        dims = _valid_dims(op, v)
        ins, out, dt = tuple(1 for _ in inputs), 1, v.dtypes[0]  # never dereferenced: refused first
        name = f"{op}_{v.name}"
        with pytest.raises(ValueError, match=rf"^{name}: expected {len(dims)} dims \({fields}\), got {len(dims) - 1}$"):
            bound(ins, out, dims[:-1], dt)
        with pytest.raises(ValueError, match=rf"^{name}: expected {len(dims)} dims .* got {len(dims) + 1}$"):
            bound(ins, out, (*dims, 1), dt)
        with pytest.raises(ValueError, match=rf"^{name}: dims must be non-negative, got {spec.dims_fields[0]}=-1$"):
            bound(ins, out, (-1, *dims[1:]), dt)
        with pytest.raises(TypeError, match=r"^unsupported dtype 'int8'$"):
            bound(ins, out, dims, "int8")
        outside = next((d for d in DTYPES if d not in v.dtypes), None)
        if outside is not None:  # a row that takes every dtype (relu's) has none to refuse
            with pytest.raises(TypeError, match=rf"^{name}: unsupported dtype {outside} \(takes "):
                bound(ins, out, dims, outside)
        with pytest.raises(ValueError, match=rf"^{name}: expected {len(inputs)} input pointers \({', '.join(inputs)}\), "
                                             rf"got {len(inputs) + 1}$"):
            bound((*ins, 1), out, dims, dt)
        for i, arg in enumerate(inputs):
            null = tuple(0 if j == i else 1 for j in range(len(inputs)))
            if arg in optional:
                continue  # 0 is how an absent optional input is passed
            with pytest.raises(ValueError, match=rf"^{name}: {arg} is a null pointer$"):
                bound(null, out, dims, dt)
        with pytest.raises(ValueError, match=rf"^{name}: the output is a null pointer$"):
            bound(ins, 0, dims, dt)
        if not getattr(mod, f"{op}_configs")(v.name):
            with pytest.raises(ValueError, match=rf"^{name}: config must be -1: "):
                bound(ins, out, dims, dt, 0, 0)


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

"""A NumPy-only program never imports numba.cuda (1-2 s on first use); asking about the GPU
backends does, and the registry lists the same variants, in the same order, either way. Where
numba cannot be imported, the numba backend is unavailable with that reason, and the others work."""
import json
import os
import subprocess
import sys
import tempfile

import pykern as pk
from pykern.ops import OPS


def run_python(code: str) -> subprocess.CompletedProcess:
    # The same pykern as this test session (installed or source), without the test conftest's
    # NUMBA_ENABLE_CUDASIM, from a folder that holds no source tree.
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(pk.__file__)))
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=env, cwd=tempfile.gettempdir())


NUMPY_ONLY = """
import sys, numpy as np, pykern as pk
a = np.random.rand(8, 5).astype(np.float32); b = np.random.rand(5, 3).astype(np.float32)
pk.matmul(a, b); pk.relu(a); pk.relu(a, backend="numpy", variant="reference")
pk.conv2d(np.ones((1, 2, 5, 5), np.float32), np.ones((3, 2, 3, 3), np.float32), padding=1)
pk.variants("matmul", "numpy"); pk.variants(backend="cuda")
print(pk.check("relu", "numpy", trials=1).passed)
print(sorted(m for m in sys.modules if m == "numba" or m.startswith("numba.")))
"""


def test_numpy_only_calls_do_not_import_numba_cuda():
    proc = run_python(NUMPY_ONLY)
    assert proc.returncode == 0, proc.stderr
    passed, mods = proc.stdout.strip().splitlines()[-2:]
    assert passed == "True"
    assert "numba.cuda" not in mods, mods


def test_asking_about_gpu_backends_loads_numba_and_keeps_the_variant_order():
    code = ("import json, sys, pykern as pk\n"
            "pk.variants('relu', 'numba')\n"  # numba first: must not change the order
            "print('numba.cuda' in sys.modules)\n"
            "print(json.dumps([v.key for v in pk.variants()]))\n")
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    loaded, keys = proc.stdout.strip().splitlines()[-2:]
    assert loaded == "True"
    listed = json.loads(keys)
    assert listed == [v.key for v in pk.variants()]
    backends_in_order = list(dict.fromkeys(k.split("/")[1] for k in listed))
    assert backends_in_order == list(pk.backends()) == ["numpy", "numba", "cuda"]


def test_backends_reports_numba_lazily():
    proc = run_python("import sys, pykern as pk\nprint('numba.cuda' in sys.modules)\n"
                      "pk.backends()\nprint('numba.cuda' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"]


# Runs before pykern is imported: numba and numba_cuda raise ModuleNotFoundError, as where they
# are not installed.
WITHOUT_NUMBA = """
import sys
class NoNumba:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("numba", "numba_cuda"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoNumba())
"""


def test_without_numba_the_backend_says_why_and_the_variant_list_is_stable():
    code = WITHOUT_NUMBA + (
        "import json, numpy as np, pykern as pk\n"
        "first = [v.key for v in pk.variants()]\n"
        "second = [v.key for v in pk.variants()]\n"
        "numba_only = [v.key for v in pk.variants(backend='numba')]\n"
        "try:\n"
        "    pk.relu(np.float32([1, -2]), backend='numba')\n"
        "    refusal = ''\n"
        "except RuntimeError as e:\n"
        "    refusal = str(e)\n"
        "y = pk.relu(np.float32([1, -2]))\n"
        "print(json.dumps({'first': first, 'second': second, 'numba_only': numba_only,\n"
        "                  'reason': pk.backends()['numba'].reason, 'available': pk.backends()['numba'].available,\n"
        "                  'refusal': refusal, 'relu': y.tolist(),\n"
        "                  'numba_modules': [m for m in sys.modules if m.split('.')[0] == 'numba']}))\n")
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["available"] is False
    assert "pykern.numba_cuda cannot be imported" in out["reason"]
    assert "No module named 'numba" in out["reason"] and "pip install numba-cuda" in out["reason"]
    assert out["refusal"] == f"backend 'numba' is not available: {out['reason']}"
    # The same list on every call: every numpy and cuda variant of this session, and no numba.
    assert out["first"] == out["second"]
    assert out["first"] == [v.key for v in pk.variants() if v.backend != "numba"]
    assert out["numba_only"] == [] and out["numba_modules"] == []
    assert out["relu"] == [1.0, 0.0]


def test_an_import_error_inside_pykern_is_raised_not_hidden():
    """A missing pykern module is a bug: it must surface on every call, never as 'unavailable'."""
    code = ("import sys, pykern as pk\n"
            "sys.modules['pykern.numba_cuda.relu'] = None\n"  # import of it now raises ImportError
            "for attempt in range(2):\n"
            "    try:\n"
            "        pk.variants(backend='numba')\n"
            "        print('listed')\n"
            "    except ImportError as e:\n"
            "        print('raised', e.name)\n")
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["raised", "pykern.numba_cuda.relu"] * 2


def test_without_numba_the_cli_lists_the_rest_and_the_reason():
    code = WITHOUT_NUMBA + ("import runpy\n"
                            "sys.argv = ['pykern', 'info']\n"
                            "runpy.run_module('pykern', run_name='__main__')\n")
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert "pykern.numba_cuda cannot be imported (ModuleNotFoundError: No module named 'numba" in proc.stdout
    rows = [ln.split() for ln in proc.stdout.splitlines()]
    listed = {(r[0], r[1], r[2].lstrip("*")) for r in rows if len(r) > 2 and r[0] in OPS}
    assert listed == {(v.op, v.backend, v.name) for v in pk.variants() if v.backend != "numba"}


def test_pykern_torch_without_torch_says_what_to_install():
    """The [torch] extra does not install torch (it would pull a CUDA build onto a CPU-only
    machine), so pykern.torch names the pin to install first; plain pykern is unaffected."""
    proc = run_python("import sys; sys.modules['torch'] = None\n"
                      "import pykern\n"
                      "try:\n    import pykern.torch\nexcept ImportError as e:\n    print(e.name); print(e)")
    assert proc.returncode == 0, proc.stderr
    name, msg = proc.stdout.strip().splitlines()[-2:]
    assert name == "torch"
    assert msg.startswith("pykern.torch needs PyTorch >= 2.4, which is not installed; the [torch] extra does not "
                          "install torch")
    assert "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in msg

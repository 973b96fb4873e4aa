"""A new op is its spec and one file per backend (issue 20), and docs/adding.md's steps for a new
op are exactly what this test does.

It writes a toy op, ``square`` (y = x * x), as the four files those steps name: the spec
(pykern/ops/square.py), a NumPy variant (pykern/cpu/square.py), a Numba kernel
(pykern/numba_cuda/square.py) and a CUDA C++ kernel with its variant table (kernels/square.cu),
into a copy of the source tree. It builds that copy's CUDA simulator extension with CMake, then,
in a fresh interpreter that imports the copy, runs the registry-generated tests for ``square``
and ``pykern bench`` for it. Nothing else in the copy is edited: no list anywhere names the op.

To keep the build to seconds, the copy keeps no other op's kernels/*.cu: which also shows that
the binder (csrc/) needs none of them. The Python side keeps every op.
"""
import os
import shutil
import site
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The copy's simulator runs a few small kernels: compile time outweighs run time (PYKERN_SIM_OPT).
SIM_OPT = os.environ.get("PYKERN_TEST_SIM_OPT", "-O0")

FILES = {
    "pykern/ops/square.py": '''
        """square: y = x * x elementwise; any shape (a toy op: tests/test_new_op.py)."""
        import numpy as np

        from .relu import ElementwiseSpec
        from ._spec import random_array


        def reference(x: np.ndarray) -> np.ndarray:
            """y = x * x in float64; x: any shape."""
            x = x.astype(np.float64)
            return x * x


        class SquareSpec(ElementwiseSpec):
            name = "square"
            inputs = ("x",)

            def validate(self, infos, params):
                return infos["x"].shape, self.same_dtype(infos), params

            def reference(self, arrays, params):
                return reference(arrays["x"])

            def magnitude(self, arrays, params):
                return reference(arrays["x"])  # x * x is its own only term

            def make_inputs(self, case, dtype, rng):
                return {"x": random_array(rng, case["shape"], dtype)}, {}

            def bytes_moved(self, case, itemsize):
                return 2.0 * np.prod(case["shape"]) * itemsize


        SPEC = SquareSpec()
    ''',
    "pykern/cpu/square.py": '''
        """square on the CPU with NumPy."""
        import numpy as np

        from .._registry import register


        @register("square", "numpy", dtypes=("float32", "float64"), default=True)
        def multiply(x, y):
            """np.multiply(x, x, out=y): one pass."""
            np.multiply(x, x, out=y)
    ''',
    "pykern/numba_cuda/square.py": '''
        """square in Numba CUDA."""
        from numba import cuda

        from .._registry import register


        @cuda.jit
        def _kernel(x, y):
            # x, y: (n,)
            i = cuda.grid(1)
            if i < x.size:
                y[i] = x[i] * x[i]


        @register("square", "numba", dtypes=("float32", "float64"), default=True)
        def naive(x, y):
            """One thread per element."""
            _kernel[(x.size + 255) // 256, 256](x.reshape(x.size), y.reshape(y.size))
    ''',
    "kernels/square.cu": '''
        // square: y = x * x elementwise (a toy op: tests/test_new_op.py).
        //
        // Variants:
        //   naive   one thread per element, grid sized to n
        #include "dispatch.cuh"
        #include "launch.cuh"
        #include "pykern.h"

        namespace pykern {
        namespace {

        constexpr int kBlock = 256;

        template <typename T>
        __global__ void __launch_bounds__(kBlock) square_naive_kernel(const T* x, T* y, int64_t n) {
          // x, y: (n,)
          const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
          if (i < n) y[i] = x[i] * x[i];
        }

        void launch_naive(const Call& call) {
          const auto d = call.dims_as<ElementwiseDims>();
          dispatch_dtype<float, double>(call.dtype, call.name, [&](auto tag) {
            using T = typename decltype(tag)::type;
            PYKERN_LAUNCH(ceil_div(d.n, kBlock), kBlock, 0, call.stream, square_naive_kernel<T>)(
                call.input<T>(0), call.output<T>(), d.n);
            check_launch(call.name);
          });
        }

        }  // namespace

        constexpr Variant kVariants[] = {
            // name    dtypes       default  launcher
            {"naive",  kF32 | kF64, true,    launch_naive,
             "One thread per element; grid sized to n."},
        };

        PYKERN_TABLE(square, ElementwiseDims, "x", kVariants);

        }  // namespace pykern
    ''',
}


def _pybind11_cmake_dir():
    try:
        import pybind11
    except ImportError:
        return None
    return pybind11.get_cmake_dir()


def _copy_tree(dst):
    """The repository's tracked sources (no build folders, no installed extensions)."""
    def ignore(folder, names):
        rel = os.path.relpath(folder, ROOT)
        skip = {n for n in names if n in (".git", "build", "__pycache__", ".pytest_cache", ".hypothesis")
                or n.endswith((".so", ".pyd")) or n in ("_variant_tables.py", "_build.py")}
        if rel == "bench":
            skip.add("results")
        if rel == "kernels":
            skip |= {n for n in names if n.endswith(".cu")}  # other ops' kernels: see the module docstring
        return skip
    shutil.copytree(ROOT, dst, ignore=ignore)


def _run(cmd, cwd, env, timeout):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def copy_with_square(tmp_path_factory):
    """A built copy of the source tree with the toy op's four files added, and the environment
    that imports it (python -S: an editable install's import hook would find the checkout)."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake not found: the toy op's simulator extension cannot be built")
    cmake_dir = _pybind11_cmake_dir()
    if cmake_dir is None:
        pytest.skip("pybind11 is not installed in this environment (pip install '.[test]')")
    if not os.path.isfile(os.path.join(ROOT, "CMakeLists.txt")):
        pytest.skip("no source tree beside these tests")
    work = tmp_path_factory.mktemp("new_op")
    src, build = work / "src", work / "build"
    _copy_tree(src)
    for rel, text in FILES.items():
        (src / rel).write_text(textwrap.dedent(text).lstrip())
    env = dict(os.environ)
    # The simulator only: the toy op has no compiled CPU kernel, and pykern._cpu would add its build time.
    _run([cmake, "-S", str(src), "-B", str(build), "-DPYKERN_NO_CUDA=ON", "-DPYKERN_NO_CPU_EXT=ON",
          f"-Dpybind11_DIR={cmake_dir}", f"-DPYKERN_SIM_OPT={SIM_OPT}",
          f"-DPython_EXECUTABLE={sys.executable}"], work, env, 300)
    _run([cmake, "--build", str(build), "-j", str(min(4, os.cpu_count() or 1))], work, env, 600)
    # What `pip install .` would put beside the package: the extension and the two generated files.
    for f in os.listdir(build):
        if f.startswith("_cuda_sim") and f.endswith((".so", ".pyd")):
            shutil.copy(build / f, src / "pykern" / f)
    shutil.copy(build / "_variant_tables.py", src / "pykern" / "cuda" / "_variant_tables.py")
    shutil.copy(build / "_build.py", src / "pykern" / "_build.py")
    env["PYTHONPATH"] = os.pathsep.join([str(src)] + site.getsitepackages() + [site.getusersitepackages()])
    env.pop("PYTEST_XDIST_WORKER", None)
    env.update(PYKERN_CUDA_SIM="1", NUMBA_ENABLE_CUDASIM="1")  # no GPU here: both simulators
    return src, env


def _python(src, env, *args, timeout=600):
    return _run([sys.executable, "-S", *args], src, env, timeout)


def test_the_copy_imports_itself_and_lists_square(copy_with_square):
    src, env = copy_with_square
    out = _python(src, env, "-c", "import pykern as pk; print(pk.__file__); "
                  "print(sorted((v.backend, v.name) for v in pk.variants('square')));"
                  "import numpy as np; x = np.arange(5, dtype=np.float32); print(pk.square(x, backend='cuda'))")
    lines = out.splitlines()
    assert lines[0].startswith(str(src)), f"the copy did not import itself: {lines[0]}"
    assert lines[1] == "[('cuda', 'naive'), ('numba', 'naive'), ('numpy', 'multiply')]"
    assert lines[2] == "[ 0.  1.  4.  9. 16.]"


def test_the_registry_generated_tests_run_square(copy_with_square):
    """The correctness, table and validation tests are generated from the registry: each finds
    square's three variants with no edit, and they pass."""
    src, env = copy_with_square
    out = _python(src, env, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_correctness.py",
                  "tests/test_cuda_tables.py", "tests/test_validation.py", "-k", "square")
    summary = out.strip().splitlines()[-1]
    assert "failed" not in summary and "skipped" not in summary and "passed" in summary, out[-3000:]
    # every variant on its test cases and dtypes (87 when written), the tables' checks, validation
    assert int(summary.split(" passed")[0].split()[-1]) >= 50, summary


def test_pykern_bench_runs_square(copy_with_square):
    src, env = copy_with_square
    out = _python(src, env, "-m", "pykern", "bench", "--op", "square", "--sizes", "square=2^10", "--quick",
                  "--reps", "3", "--no-progress", "--no-baselines")
    for variant in ("multiply", "naive"):
        assert variant in out, out
    assert "square" in out and "numba" in out and "cuda" in out, out

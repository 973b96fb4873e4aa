// pykern._cuda_sim's own functions: simulator settings, counters and the planted-bug kernels.
#include <pybind11/pybind11.h>

#include <pybind11/stl.h>

#include "planted.h"
#include "ptx_probe.h"
#include "sim_config.h"
#include "tma_probe.h"
#include "wgmma_probe.h"

namespace py = pybind11;

namespace pykern {

void bind_sim(py::module_& m) {
  m.attr("SIMULATOR") = true;
  m.def("sim_config", [] {
    const auto c = pykern_sim::get_config();
    py::dict d;
    d["order"] = c.order;
    d["seed"] = c.seed;
    d["compute_capability"] = py::make_tuple(c.cc_major, c.cc_minor);
    d["sm_count"] = c.sm_count;
    return d;
  }, "The simulator's settings: thread order, seed, compute capability, SM count");
  m.def("sim_configure",
        [](py::object order, py::object seed, py::object cc, py::object sms) {
          auto c = pykern_sim::get_config();
          if (!order.is_none()) c.order = order.cast<std::string>();
          if (!seed.is_none()) c.seed = seed.cast<uint64_t>();
          if (!cc.is_none()) {
            auto t = cc.cast<py::tuple>();
            c.cc_major = t[0].cast<int>();
            c.cc_minor = t[1].cast<int>();
          }
          if (!sms.is_none()) c.sm_count = sms.cast<int>();
          pykern_sim::set_config(c);
        },
        py::arg("order") = py::none(), py::arg("seed") = py::none(), py::arg("compute_capability") = py::none(),
        py::arg("sm_count") = py::none(),
        "Change settings for later launches. order: 'forward', 'reverse' or 'random' (with seed).");
  m.def("sim_stats", [] {
    const auto s = pykern_sim::get_stats();
    py::dict d;
    d["launches"] = s.launches;
    d["blocks"] = s.blocks;
    d["threads"] = s.threads;
    d["barriers"] = s.barriers;
    d["switches"] = s.switches;
    d["ldmatrix_matrices"] = s.ldmatrix_matrices;
    d["ldmatrix_extra_wavefronts"] = s.ldmatrix_extra_wavefronts;
    return d;
  }, "Counters since the last sim_reset_stats(): launches, blocks, threads, block barriers, fiber switches, "
     "ldmatrix 8x8 matrices and the bank-conflict wavefronts they cost beyond one each");
  m.def("sim_reset_stats", &pykern_sim::reset_stats);

  // Deliberately broken kernels next to their correct twins (csrc/sim/planted.cu), for the
  // tests that show the simulator catches each kind of bug.
  m.def("planted_bugs", [] {
    py::list l;
    for (int i = 0; i < planted::kCount; ++i) l.append(planted::name(i));
    return l;
  });
  m.def("planted_run",
        [](const std::string& bug, bool broken, uintptr_t a, uintptr_t b, uintptr_t c, int M, int N, int K) {
          planted::run(bug, broken, reinterpret_cast<const void*>(a), reinterpret_cast<const void*>(b),
                       reinterpret_cast<void*>(c), M, N, K);
        },
        py::arg("bug"), py::arg("broken"), py::arg("a"), py::arg("b"), py::arg("c"), py::arg("M"), py::arg("N"),
        py::arg("K"),
        "Run the planted-bug kernel family `bug` (broken or its correct twin): c = a @ b for the matmul "
        "families, c[:M] = relu(a[:M]) for the bound family");
  // The warp-level matrix instructions alone (csrc/sim/ptx_probe.cu), for the layout tests.
  m.def("ptx_ldmatrix",
        [](int count, bool trans, uintptr_t src, uintptr_t rows, uintptr_t out) {
          ptx_probe::ldmatrix(count, trans, reinterpret_cast<const void*>(src), reinterpret_cast<const void*>(rows),
                              reinterpret_cast<void*>(out));
        },
        py::arg("count"), py::arg("trans"), py::arg("src"), py::arg("rows"), py::arg("out"),
        "One warp's ldmatrix.x{count}{.trans}: src 32x8 uint16, lane l reads row rows[l] (int32), "
        "out 32x4 uint32 (lane-major registers)");
  m.def("ptx_mma",
        [](const std::string& kind, uintptr_t a, uintptr_t b, uintptr_t c, uintptr_t d) {
          ptx_probe::mma(kind, reinterpret_cast<const void*>(a), reinterpret_cast<const void*>(b),
                         reinterpret_cast<const void*>(c), reinterpret_cast<void*>(d));
        },
        py::arg("kind"), py::arg("a"), py::arg("b"), py::arg("c"), py::arg("d"),
        "One warp's mma.sync (kind f16, bf16: m16n8k16; tf32: m16n8k8) on lane-major registers "
        "a 32x4, b 32x2 uint32, c, d 32x4 float32");
  m.def("ptx_layout", &ptx_probe::layout, py::arg("fragment"),
        "The simulator's fragment layout formulas: per lane, the (row, col) of each element");
  // mbarrier and TMA (csrc/sim/tma_probe.cu), for tests/test_cuda_sim_tma.py.
  m.def("tma_tile",
        [](const std::string& mode, const std::string& bug, uintptr_t src, int H, int W, int elem_bytes, int box_h,
           int box_w, int span, uintptr_t out) {
          tma_probe::tile(mode, bug, reinterpret_cast<const void*>(src), H, W, elem_bytes, box_h, box_w, span,
                          reinterpret_cast<void*>(out));
        },
        py::arg("mode"), py::arg("bug"), py::arg("src"), py::arg("H"), py::arg("W"), py::arg("elem_bytes"),
        py::arg("box_h"), py::arg("box_w"), py::arg("span"), py::arg("out"),
        "TMA 2-D tile loads of an (H, W) matrix, one box a block: mode 'raw' dumps each shared box as laid "
        "out, 'logical' (float32) writes the elements back in place; bug 'none' or a planted one");
  m.def("tma_stream",
        [](const std::string& bug, uintptr_t src, int H, int W, int box_h, int box_w, int span, uintptr_t out) {
          tma_probe::stream(bug, reinterpret_cast<const void*>(src), H, W, box_h, box_w, span,
                            reinterpret_cast<void*>(out));
        },
        py::arg("bug"), py::arg("src"), py::arg("H"), py::arg("W"), py::arg("box_h"), py::arg("box_w"),
        py::arg("span"), py::arg("out"),
        "One block streams the boxes of a float32 (H, W <= box_w) matrix through one buffer and one mbarrier, "
        "box k waited with parity k & 1");
  m.def("tma_pipeline",
        [](const std::string& bug, uintptr_t a, uintptr_t b, uintptr_t c, int M, int N, int K) {
          tma_probe::pipeline(bug, reinterpret_cast<const void*>(a), reinterpret_cast<const void*>(b),
                              reinterpret_cast<void*>(c), M, N, K);
        },
        py::arg("bug"), py::arg("a"), py::arg("b"), py::arg("c"), py::arg("M"), py::arg("N"), py::arg("K"),
        "A 2-stage TMA -> mma.sync pipeline (a warp producing, four consuming): c = a @ b, fp16 in, fp32 out");
  m.def("mbarrier_arrivals",
        [](const std::string& bug, int iters, uintptr_t out) {
          tma_probe::arrivals(bug, iters, reinterpret_cast<void*>(out));
        },
        py::arg("bug"), py::arg("iters"), py::arg("out"),
        "64 threads through `iters` phases of a count-64 mbarrier; out (iters, 64) float32");
  m.def("mbarrier_semantics", [](uintptr_t out) { tma_probe::semantics(reinterpret_cast<void*>(out)); },
        py::arg("out"), "One thread steps an mbarrier through two phases; out: 13 int32 wait results");
  m.def("tma_misuse",
        [](const std::string& what, uintptr_t out) { tma_probe::misuse(what, reinterpret_cast<void*>(out)); },
        py::arg("what"), py::arg("out"), "mbarrier/TMA misuse the simulator must refuse; raises RuntimeError");
  m.def("tma_swizzle_chunks", &tma_probe::swizzle_chunks, py::arg("span"), py::arg("bytes"),
        "The simulator's TMA swizzle: where each 16-byte chunk of a box lands (chunk index)");
  // wgmma (csrc/sim/wgmma_probe.cu), for tests/test_cuda_sim_wgmma.py.
  m.def("wgmma_tile",
        [](const std::string& dtype, const std::string& bug, uintptr_t a, uintptr_t b, uintptr_t c, int K, int span,
           bool trans_a, bool trans_b) {
          wgmma_probe::tile(dtype, bug, reinterpret_cast<const void*>(a), reinterpret_cast<const void*>(b),
                            reinterpret_cast<void*>(c), K, span, trans_a, trans_b);
        },
        py::arg("dtype"), py::arg("bug"), py::arg("a"), py::arg("b"), py::arg("c"), py::arg("K"), py::arg("span"),
        py::arg("trans_a"), py::arg("trans_b"),
        "One warpgroup's c (64, 64) = A (64, K) @ B (K, 64) through TMA and wgmma; a and b as stored (K-major "
        "or, with trans_a / trans_b, MN-major); bug 'none' or a planted one");
  m.def("wgmma_pipeline",
        [](const std::string& bug, uintptr_t a, uintptr_t b, uintptr_t c, int M, int N, int K) {
          wgmma_probe::pipeline(bug, reinterpret_cast<const void*>(a), reinterpret_cast<const void*>(b),
                                reinterpret_cast<void*>(c), M, N, K);
        },
        py::arg("bug"), py::arg("a"), py::arg("b"), py::arg("c"), py::arg("M"), py::arg("N"), py::arg("K"),
        "A 2-stage TMA -> wgmma pipeline (a producer warp, a consumer warpgroup): c = a @ b, fp16 in, fp32 out");
  m.def("wgmma_misuse",
        [](const std::string& what, uintptr_t out) { wgmma_probe::misuse(what, reinterpret_cast<void*>(out)); },
        py::arg("what"), py::arg("out"), "wgmma misuse the simulator must refuse; raises RuntimeError");
  m.def("wgmma_acc_layout", &wgmma_probe::acc_layout, py::arg("n"),
        "The simulator's wgmma accumulator layout: per warpgroup thread, the (row, col) of each d[i]");
  m.def("wgmma_descriptor_addresses", &wgmma_probe::descriptor_addresses, py::arg("desc"), py::arg("mn_major"),
        "The simulator's decoding of a matrix descriptor: per element (mn, k) of a 64 x 16 tile, "
        "(address before the swizzle, after it)");
  m.def("sim_probe", [](const std::string& what, uintptr_t c) { planted::probe(what, reinterpret_cast<void*>(c)); },
        py::arg("what"), py::arg("c"),
        "Launch a probe that a GPU refuses or hangs on (see csrc/sim/planted.h); raises RuntimeError");
}

}  // namespace pykern

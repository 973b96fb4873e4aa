// pykern CUDA simulator: mbarrier objects, TMA tiled loads and cuTensorMapEncodeTiled. What is
// modelled, and how a copy's completion is timed, is in sim_tma.h.
#include "sim_tma.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "cuda_sim.h"

namespace pykern_sim {
namespace {

// ---- mbarrier objects -------------------------------------------------------------------------

constexpr long long kTxLimit = (1 << 20) - 1;  // the ISA's range of the tx-count and of count
// arrive's state: the index of the phase the arrival counted toward, under a tag so that a
// state that did not come from an arrive is noticed.
constexpr uint64_t kStateTag = 0x5ba7ull << 48, kStateMask = (1ull << 48) - 1;

struct Landing {  // a TMA copy whose complete_tx is still to come
  unsigned char* dst;
  std::vector<unsigned char> data;  // the box as it will land (swizzled, zero-filled), read at issue
};

struct Mbarrier {
  unsigned expected = 0, pending = 0;  // arrivals per phase, and still due in the current one
  long long tx = 0;                    // tx-count: bytes expected minus bytes completed
  uint64_t phase = 0;                  // the current phase's index (phases completed so far)
  std::vector<Landing> copies;
};

std::unordered_map<const void*, Mbarrier> g_bars;
unsigned long long g_bars_epoch = ~0ull;
std::string g_map_error;

void fresh_block() {
  if (g_bars_epoch != g_block_epoch) {  // a new block: every mbarrier of the last one is gone
    g_bars.clear();
    g_bars_epoch = g_block_epoch;
  }
}

[[noreturn]] void fail_at(const void* bar, const std::string& what) {
  char where[48];
  std::snprintf(where, sizeof where, " (mbarrier at %p)", bar);
  fail((what + where).c_str());
  std::abort();  // not reached: fail throws
}

void check_address(const void* bar, const char* op) {
  if (reinterpret_cast<uintptr_t>(bar) % 8 != 0)
    fail_at(bar, std::string(op) + ": an mbarrier object is 8 bytes, 8-byte aligned");
}

Mbarrier& get(void* bar, const char* op) {
  check_address(bar, op);
  fresh_block();
  auto it = g_bars.find(bar);
  if (it == g_bars.end())
    fail_at(bar, std::string(op) + " on an mbarrier that mbarrier.init has not initialized in this block");
  return it->second;
}

void check_tx(const void* bar, const Mbarrier& b, const char* op) {
  if (b.tx > kTxLimit || b.tx < -kTxLimit)
    fail_at(bar, std::string(op) + ": the tx-count left the ISA's range +-(2^20 - 1): " + std::to_string(b.tx));
}

// The phase completes when no arrival and no transaction byte is pending.
void maybe_complete(Mbarrier& b) {
  if (b.pending == 0 && b.tx == 0) {
    ++b.phase;
    b.pending = b.expected;
    note_progress();
  }
}

// The copies land at the latest moment a GPU could deliver them: once every arrival of the
// phase is in, at the next touch of the barrier that needs the phase's state (sim_tma.h): an
// arrive, an expect_tx or complete_tx, another copy, or a wait the completed phases so far do
// not already satisfy.
void resolve(void* bar, Mbarrier& b) {
  if (b.pending != 0 || b.copies.empty()) return;
  for (Landing& c : b.copies) {
    std::memcpy(c.dst, c.data.data(), c.data.size());
    b.tx -= static_cast<long long>(c.data.size());
  }
  b.copies.clear();
  check_tx(bar, b, "complete_tx of a TMA copy");
  note_progress();
  maybe_complete(b);
}

uint64_t arrive(void* bar, Mbarrier& b, const char* op) {
  if (b.pending == 0)
    fail_at(bar, std::string(op) + ": more arrivals in one phase than the count mbarrier.init gave (" +
                     std::to_string(b.expected) + ")");
  const uint64_t state = kStateTag | (b.phase & kStateMask);
  --b.pending;
  note_progress();
  maybe_complete(b);
  return state;
}

bool parity_done(const Mbarrier& b, unsigned parity) { return (b.phase & 1) != parity; }

void check_parity(void* bar, unsigned parity, const char* op) {
  if (parity > 1) fail_at(bar, std::string(op) + ": phaseParity must be 0 or 1, got " + std::to_string(parity));
}

bool state_done(void* bar, const Mbarrier& b, uint64_t state, const char* op) {
  if ((state & ~kStateMask) != kStateTag)
    fail_at(bar, std::string(op) + ": the state operand did not come from mbarrier.arrive");
  return b.phase > (state & kStateMask);
}

// ---- tensor maps ------------------------------------------------------------------------------

constexpr uint32_t kMapMagic = 0x70b3a11d;

struct Map {  // what cuTensorMapEncodeTiled was given, checked
  uint32_t magic;
  uint8_t rank, elem_bytes, swizzle_span;  // swizzle_span: 0 (none), 32, 64, 128
  uint64_t address;
  uint64_t dims[5];
  uint64_t strides[4];  // bytes between consecutive indices of dimensions 1.., as given
  uint32_t box[5];
};
static_assert(sizeof(Map) <= sizeof(CUtensorMap), "the record must fit in the driver's 128 bytes");

int elem_bytes(CUtensorMapDataType t) {
  switch (t) {
    case CU_TENSOR_MAP_DATA_TYPE_UINT8: return 1;
    case CU_TENSOR_MAP_DATA_TYPE_UINT16:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT16:
    case CU_TENSOR_MAP_DATA_TYPE_BFLOAT16: return 2;
    case CU_TENSOR_MAP_DATA_TYPE_UINT32:
    case CU_TENSOR_MAP_DATA_TYPE_INT32:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT32:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT32_FTZ:
    case CU_TENSOR_MAP_DATA_TYPE_TFLOAT32:
    case CU_TENSOR_MAP_DATA_TYPE_TFLOAT32_FTZ: return 4;
    case CU_TENSOR_MAP_DATA_TYPE_UINT64:
    case CU_TENSOR_MAP_DATA_TYPE_INT64:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT64: return 8;
    default: return 0;  // the packed 4- and 6-bit types, or not a type
  }
}

CUresult map_error(CUresult code, const std::string& why) {
  g_map_error = "cuTensorMapEncodeTiled: " + why;
  return code;
}

}  // namespace

std::string tensor_map_error() { return g_map_error; }

std::string mbarrier_describe(const void* bar) {
  auto it = g_bars.find(bar);
  if (bar == nullptr || it == g_bars.end()) return "an mbarrier no longer initialized";
  const Mbarrier& b = it->second;
  char buf[200];
  std::snprintf(buf, sizeof buf, "mbarrier at %p, phase %llu: %u of %u arrivals pending, tx-count %lld bytes%s", bar,
                static_cast<unsigned long long>(b.phase), b.pending, b.expected, b.tx,
                b.tx > 0   ? " never completed (expect_tx announced more than the copies delivered?)"
                : b.tx < 0 ? " (the copies delivered more bytes than expect_tx announced)"
                           : "");
  return buf;
}

namespace tma {

void mbarrier_init(void* bar, unsigned count) {
  check_address(bar, "mbarrier.init");
  fresh_block();
  if (count < 1 || count > kTxLimit)
    fail_at(bar, "mbarrier.init: count must be in [1, 2^20 - 1], got " + std::to_string(count));
  auto it = g_bars.find(bar);
  if (it != g_bars.end() && !it->second.copies.empty())
    fail_at(bar, "mbarrier.init on an mbarrier with TMA copies still in flight");
  Mbarrier& b = g_bars[bar];
  b = Mbarrier{};
  b.expected = b.pending = count;
  note_progress();
}

uint64_t mbarrier_arrive(void* bar) {
  Mbarrier& b = get(bar, "mbarrier.arrive");
  resolve(bar, b);
  return arrive(bar, b, "mbarrier.arrive");
}

uint64_t mbarrier_arrive_expect_tx(void* bar, unsigned tx_bytes) {
  Mbarrier& b = get(bar, "mbarrier.arrive.expect_tx");
  resolve(bar, b);
  b.tx += tx_bytes;  // the expect-tx operation, then the arrive-on operation
  check_tx(bar, b, "mbarrier.arrive.expect_tx");
  return arrive(bar, b, "mbarrier.arrive.expect_tx");
}

void mbarrier_expect_tx(void* bar, unsigned tx_bytes) {
  Mbarrier& b = get(bar, "mbarrier.expect_tx");
  resolve(bar, b);
  b.tx += tx_bytes;
  check_tx(bar, b, "mbarrier.expect_tx");
  note_progress();
  maybe_complete(b);  // a tx-count below zero can come back to zero here
}

void mbarrier_complete_tx(void* bar, unsigned tx_bytes) {
  Mbarrier& b = get(bar, "mbarrier.complete_tx");
  resolve(bar, b);
  b.tx -= tx_bytes;
  check_tx(bar, b, "mbarrier.complete_tx");
  note_progress();
  maybe_complete(b);
}

bool mbarrier_test_wait_parity(void* bar, unsigned parity) {
  check_parity(bar, parity, "mbarrier.test_wait.parity");
  Mbarrier& b = get(bar, "mbarrier.test_wait.parity");
  if (parity_done(b, parity)) return true;  // decided without landing anything
  resolve(bar, b);
  if (parity_done(b, parity)) return true;
  poll_yield(bar);  // non-blocking, but a loop around it must let the others arrive
  return false;
}

bool mbarrier_try_wait_parity(void* bar, unsigned parity) {
  check_parity(bar, parity, "mbarrier.try_wait.parity");
  for (;;) {
    Mbarrier& b = get(bar, "mbarrier.try_wait.parity");
    if (parity_done(b, parity)) return true;
    resolve(bar, b);
    if (parity_done(b, parity)) return true;
    poll_yield(bar);
  }
}

bool mbarrier_test_wait(void* bar, uint64_t state) {
  Mbarrier& b = get(bar, "mbarrier.test_wait");
  if (state_done(bar, b, state, "mbarrier.test_wait")) return true;
  resolve(bar, b);
  if (state_done(bar, b, state, "mbarrier.test_wait")) return true;
  poll_yield(bar);
  return false;
}

bool mbarrier_try_wait(void* bar, uint64_t state) {
  for (;;) {
    Mbarrier& b = get(bar, "mbarrier.try_wait");
    if (state_done(bar, b, state, "mbarrier.try_wait")) return true;
    resolve(bar, b);
    if (state_done(bar, b, state, "mbarrier.try_wait")) return true;
    poll_yield(bar);
  }
}

size_t swizzle(int span, size_t offset) {
  // Bits [4, 4+b) XOR bits [7, 7+b): 32B b = 1, 64B b = 2, 128B b = 3.
  const size_t mask = span == 128 ? 7 : span == 64 ? 3 : span == 32 ? 1 : 0;
  return offset ^ (((offset >> 7) & mask) << 4);
}

void tensor_load(void* dst, const CUtensorMap* tensor_map, const int* coords, int rank, void* bar) {
  const char* op = "cp.async.bulk.tensor";
  Map m;
  std::memcpy(&m, tensor_map, sizeof m);
  if (m.magic != kMapMagic) fail("cp.async.bulk.tensor: the tensor map was not made by cuTensorMapEncodeTiled");
  if (m.rank != rank) {
    fail(("cp.async.bulk.tensor." + std::to_string(rank) + "d with a tensor map of rank " + std::to_string(m.rank))
             .c_str());
  }
  // The ISA asks 128-byte alignment of the destination; a swizzled one, the pattern's repeat here.
  const size_t align = m.swizzle_span ? 8u * m.swizzle_span : 128u;
  if (reinterpret_cast<uintptr_t>(dst) % align != 0) {
    fail(("cp.async.bulk.tensor: the shared-memory destination must be " + std::to_string(align) +
          "-byte aligned" + (m.swizzle_span ? " (the swizzle pattern's repeat; sim_tma.h says why)" : ""))
             .c_str());
  }
  Mbarrier& b = get(bar, op);
  resolve(bar, b);
  size_t elems = 1;
  for (int d = 0; d < rank; ++d) elems *= m.box[d];
  const size_t eb = m.elem_bytes;
  Landing copy{static_cast<unsigned char*>(dst), std::vector<unsigned char>(elems * eb)};
  const auto* base = reinterpret_cast<const unsigned char*>(m.address);
  int idx[5] = {0, 0, 0, 0, 0};  // position in the box, dimension 0 fastest
  for (size_t i = 0; i < elems; ++i) {
    bool inside = true;
    size_t src = 0;
    for (int d = 0; d < rank; ++d) {
      const long long g = static_cast<long long>(coords[d]) + idx[d];
      inside &= g >= 0 && static_cast<unsigned long long>(g) < m.dims[d];
      src += d == 0 ? static_cast<size_t>(g) * eb : static_cast<size_t>(g) * m.strides[d - 1];
    }
    unsigned char* out = copy.data.data() + swizzle(m.swizzle_span, i * eb);
    if (inside) std::memcpy(out, base + src, eb);
    else std::memset(out, 0, eb);  // CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE: zeros
    for (int d = 0; d < rank && ++idx[d] == static_cast<int>(m.box[d]); ++d) idx[d] = 0;
  }
  std::memset(dst, 0xff, copy.data.size());  // in flight: poisoned until the phase completes
  b.copies.push_back(std::move(copy));
  note_progress();
}

}  // namespace tma
}  // namespace pykern_sim

CUresult CUDAAPI cuTensorMapEncodeTiled(CUtensorMap* tensorMap, CUtensorMapDataType tensorDataType,
                                        cuuint32_t tensorRank, void* globalAddress, const cuuint64_t* globalDim,
                                        const cuuint64_t* globalStrides, const cuuint32_t* boxDim,
                                        const cuuint32_t* elementStrides, CUtensorMapInterleave interleave,
                                        CUtensorMapSwizzle swizzle, CUtensorMapL2promotion l2Promotion,
                                        CUtensorMapFloatOOBfill oobFill) {
  using pykern_sim::map_error;
  constexpr CUresult kInvalid = CUDA_ERROR_INVALID_VALUE, kNotSimulated = CUDA_ERROR_NOT_SUPPORTED;
  // The driver's rules, in the order cuda.h documents them.
  if (tensorMap == nullptr || reinterpret_cast<uintptr_t>(tensorMap) % 64 != 0)
    return map_error(kInvalid, "tensorMap must be 64-byte aligned");
  const int eb = pykern_sim::elem_bytes(tensorDataType);
  if (tensorDataType > CU_TENSOR_MAP_DATA_TYPE_16U6_ALIGN16B) return map_error(kInvalid, "unknown tensorDataType");
  if (eb == 0) return map_error(kNotSimulated, "the packed 4- and 6-bit data types are not simulated");
  if (tensorRank < 1 || tensorRank > 5) return map_error(kInvalid, "tensorRank must be in [1, 5]");
  if (interleave != CU_TENSOR_MAP_INTERLEAVE_NONE) return map_error(kNotSimulated, "interleaved layouts are not simulated");
  if (reinterpret_cast<uintptr_t>(globalAddress) % 16 != 0)
    return map_error(kInvalid, "globalAddress must be 16-byte aligned");
  for (cuuint32_t d = 0; d < tensorRank; ++d)
    if (globalDim[d] < 1 || globalDim[d] > (1ull << 32)) return map_error(kInvalid, "globalDim must be in [1, 2^32]");
  for (cuuint32_t d = 0; d + 1 < tensorRank; ++d)
    if (globalStrides[d] % 16 != 0 || globalStrides[d] >= (1ull << 40))
      return map_error(kInvalid, "globalStrides must be multiples of 16 below 2^40");
  for (cuuint32_t d = 0; d < tensorRank; ++d)
    if (boxDim[d] < 1 || boxDim[d] > 256) return map_error(kInvalid, "boxDim must be in [1, 256]");
  const unsigned inner = boxDim[0] * static_cast<unsigned>(eb);
  if (inner % 16 != 0) return map_error(kInvalid, "boxDim[0] * element size must be a multiple of 16 bytes");
  for (cuuint32_t d = 0; d < tensorRank; ++d) {
    if (elementStrides[d] < 1 || elementStrides[d] > 8) return map_error(kInvalid, "elementStrides must be in [1, 8]");
    if (d > 0 && elementStrides[d] != 1) return map_error(kNotSimulated, "elementStrides other than 1 are not simulated");
  }
  int span = 0;
  switch (swizzle) {
    case CU_TENSOR_MAP_SWIZZLE_NONE: span = 0; break;
    case CU_TENSOR_MAP_SWIZZLE_32B: span = 32; break;
    case CU_TENSOR_MAP_SWIZZLE_64B: span = 64; break;
    case CU_TENSOR_MAP_SWIZZLE_128B: span = 128; break;
    case CU_TENSOR_MAP_SWIZZLE_128B_ATOM_32B:
    case CU_TENSOR_MAP_SWIZZLE_128B_ATOM_32B_FLIP_8B:
    case CU_TENSOR_MAP_SWIZZLE_128B_ATOM_64B:
      return map_error(kNotSimulated, "the 128B_ATOM swizzles are not simulated");
    default: return map_error(kInvalid, "unknown swizzle");
  }
  if (span && inner > static_cast<unsigned>(span))
    return map_error(kInvalid, "the box's inner dimension (" + std::to_string(inner) +
                                   " bytes) must not exceed the swizzle span (" + std::to_string(span) + ")");
  if (span && inner != static_cast<unsigned>(span))
    return map_error(kNotSimulated, "a swizzled box narrower than its span is not simulated (sim_tma.h)");
  if (l2Promotion > CU_TENSOR_MAP_L2_PROMOTION_L2_256B) return map_error(kInvalid, "unknown l2Promotion");
  if (oobFill == CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA)
    return map_error(kNotSimulated, "the NaN out-of-bounds fill is not simulated");
  if (oobFill != CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) return map_error(kInvalid, "unknown oobFill");
  pykern_sim::Map m{};
  m.magic = pykern_sim::kMapMagic;
  m.rank = static_cast<uint8_t>(tensorRank);
  m.elem_bytes = static_cast<uint8_t>(eb);
  m.swizzle_span = static_cast<uint8_t>(span);
  m.address = reinterpret_cast<uint64_t>(globalAddress);
  for (cuuint32_t d = 0; d < tensorRank; ++d) m.dims[d] = globalDim[d], m.box[d] = boxDim[d];
  for (cuuint32_t d = 0; d + 1 < tensorRank; ++d) m.strides[d] = globalStrides[d];
  *tensorMap = CUtensorMap{};
  std::memcpy(tensorMap, &m, sizeof m);
  pykern_sim::g_map_error.clear();
  return CUDA_SUCCESS;
}

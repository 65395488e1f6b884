// Fused ATAC gate for MXNet's custom-operator library API (lib_api.h).
//
//   a = W1 x,  u = BN1(a),  h = relu(u),  z = W2 h,  L = BN2(z),  y = x * sigmoid(L)
//
// per pixel, for NCHW float32 tensors on CPU. Work is split into tiles of one sample's
// pixels small enough for the L1/L2 cache; within a tile the point-wise products are small
// GEMMs whose epilogues apply BN, ReLU, sigmoid and the gating multiply, so no unfused
// intermediate tensor is written.
//
// Inference is one pass over x. Training needs whole-batch passes (BN2's statistics depend
// on BN1's): the forward keeps a (and, for units wider than K = 8, z) in the operator's
// state, so each product runs once forward (W1, W2) and once backward (W2^T, W1^T, and the
// two weight gradients); narrow units recompute z = W2 h in each pass that needs it.
//
// Inputs : x, mode, w1 (k,C,1,1), gamma1, beta1, mean1, var1, w2 (C,k,1,1), gamma2, beta2,
//          mean2, var2 (GateInput). `mode` is the output of a tiny BatchNorm (see the Python
//          side): its value tells batch-statistics mode from running-statistics mode, which
//          custom operators are otherwise not told.
// Output : y. Backward updates the running statistics, as MXNet's BatchNorm does on CPU.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "lib_api.h"

using namespace mxnet::ext;

namespace {

// Vector width and register blocking follow the instruction set the library is built for.
// GCC lowers a vector type wider than the machine's registers to pairs of narrower
// instructions, so 16-float vectors on AVX2 doubled every accumulator block: the 8 x 2
// GEMM block then needed 32 of AVX2's 16 ymm registers and spilled in the inner loop.
// Each build therefore uses its own registers' width and blocks that fit in them
// (accumulators + operands <= 16 ymm or 32 zmm).
#if defined(__AVX512F__)
constexpr int V = 16;         // floats per vector
constexpr int kRowBlock = 8;  // output rows per GEMM block (x 2 vectors: 16 accumulators)
constexpr int kOuterCols = 4; // columns per weight-gradient block (x 4 rows: 16)
#define ATAC_ISA "avx512"
#else
constexpr int V = 8;
// 6 x 2 = 12 accumulators, 2 inputs and 1 weight in 16 ymm: against 4 rows, 12 FMAs per
// 8 loads instead of 8 per 6: ResNet-20 trains 2-3% faster (benchmarks/gate_ab.py)
constexpr int kRowBlock = 6;
constexpr int kOuterCols = 2; // 4 x 2 = 8 accumulators and 6 operands
#if defined(__AVX2__) && defined(__FMA__)
#define ATAC_ISA "avx2"
#else
#define ATAC_ISA "generic"
#endif
#endif
typedef float vf __attribute__((vector_size(V * sizeof(float))));
typedef int vi __attribute__((vector_size(V * sizeof(int))));

inline vf load(const float* p) { vf v; std::memcpy(&v, p, sizeof(v)); return v; }
inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof(v)); }
// vf{} + f would have to turn -0 into +0, so GCC added in a register and then broadcast
// (two more instructions per weight in the GEMMs' inner loops); set1 broadcasts from memory.
inline vf splat(float f) {
#if defined(__AVX512F__)
  return (vf)_mm512_set1_ps(f);
#elif defined(__AVX2__)
  return (vf)_mm256_set1_ps(f);
#else
  vf v;
  for (int i = 0; i < V; ++i) v[i] = f;
  return v;
#endif
}
inline float hsum(vf v) { float s = 0; for (int i = 0; i < V; ++i) s += v[i]; return s; }
inline vf vmax(vf a, vf b) { return a > b ? a : b; }
inline vf vmin(vf a, vf b) { return a < b ? a : b; }

// 1/d: a division costs as much as the rest of the sigmoid, an estimate plus Newton steps
// is exact to float rounding: one step after AVX-512's 14-bit estimate, two after AVX2's
// 12-bit one (one step leaves 6e-8, so an open gate, 1/1, came out as 1 - 2^-24).
inline vf vrecip(vf d) {
#if defined(__AVX512F__)
  vf r = (vf)_mm512_rcp14_ps((__m512)d);
  return r + r * (splat(1.0f) - d * r);
#elif defined(__AVX2__)
  vf r = (vf)_mm256_rcp_ps((__m256)d);
  r = r + r * (splat(1.0f) - d * r);
  return r + r * (splat(1.0f) - d * r);
#else
  return splat(1.0f) / d;
#endif
}

constexpr float kLog2e = 1.44269504088896341f;

// 2^t to 2e-7 relative: t = n + f with n an integer and |f| <= 1/2, 2^f a degree-5 minimax
// polynomial (fitted for relative error). The sigmoid is most of the gate's arithmetic,
// hence AVX-512's rounding and scaling instructions, one each, instead of the bit tricks.
inline vf vexp2(vf t) {
#if defined(__AVX512F__)
  vf n = (vf)_mm512_roundscale_ps((__m512)t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#elif defined(__AVX2__)
  t = vmax(t, splat(-126.0f));  // the exponent bits below: 2^n must stay a normal float
  vf n = (vf)_mm256_round_ps((__m256)t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#else
  t = vmax(t, splat(-126.0f));
  const vf magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  vf n = (t + magic) - magic;
#endif
  vf f = t - n;
  vf p = splat(1.326472731307149e-3f);
  p = p * f + splat(9.671512991189957e-3f);
  p = p * f + splat(5.550733581185341e-2f);
  p = p * f + splat(2.4022242426872253e-1f);
  p = p * f + splat(6.931470036506653e-1f);
  p = p * f + splat(1.0f);
#ifdef __AVX512F__
  return (vf)_mm512_scalef_ps((__m512)p, (__m512)n);
#else
  return (vf)((vi)p + (__builtin_convertvector(n, vi) << 23));
#endif
}

// sigmoid(u) = 1 / (1 + 2^t) with t = -u log2(e); callers that apply an affine map to u
// first fold it into t (Norm::sigmoid_of). t is capped where 2^t is still finite.
inline vf vsigmoid_t(vf t) { return vrecip(splat(1.0f) + vexp2(vmin(t, splat(126.0f)))); }

// out-block of OB rows x PB vectors: acc = W[o0.., :] . in[:, p0..]; epi(o, p, acc).
template <int OB, int PB, typename Epi>
inline void gemm_block(const float* w, int ldw, int in_rows, const float* in, int ld, int o0,
                       int p0, Epi& epi) {
  vf acc[OB][PB];
  for (int j = 0; j < OB; ++j)
    for (int q = 0; q < PB; ++q) acc[j][q] = vf{};
  for (int i = 0; i < in_rows; ++i) {
    vf xv[PB];
    for (int q = 0; q < PB; ++q) xv[q] = load(in + (size_t)i * ld + p0 + q * V);
    for (int j = 0; j < OB; ++j) {
      vf wv = splat(w[(size_t)(o0 + j) * ldw + i]);
      for (int q = 0; q < PB; ++q) acc[j][q] += wv * xv[q];
    }
  }
  for (int j = 0; j < OB; ++j)
    for (int q = 0; q < PB; ++q) epi(o0 + j, p0 + q * V, acc[j][q]);
}

template <int OB, typename Epi>
inline void gemm_rows(const float* w, int ldw, int in_rows, const float* in, int ld, int o0,
                      int P, Epi& epi) {
  int p = 0;
  for (; p + 2 * V <= P; p += 2 * V) gemm_block<OB, 2>(w, ldw, in_rows, in, ld, o0, p, epi);
  if (p < P) gemm_block<OB, 1>(w, ldw, in_rows, in, ld, o0, p, epi);
}

// For o < out_rows and vectors p < P (P a multiple of V):
// epi(o, p, sum_i w[o * ldw + i] in[i * ld + p]).
template <typename Epi>
void gemm_strided(const float* w, int ldw, int out_rows, int in_rows, const float* in, int ld,
                  int P, Epi epi) {
  int o = 0;
  for (; o + kRowBlock <= out_rows; o += kRowBlock)
    gemm_rows<kRowBlock>(w, ldw, in_rows, in, ld, o, P, epi);
  // the rows left over (K = 8 on AVX2: 6 + 2) in blocks of 4 and 2, not row by row
  for (; o + 4 <= out_rows; o += 4) gemm_rows<4>(w, ldw, in_rows, in, ld, o, P, epi);
  for (; o + 2 <= out_rows; o += 2) gemm_rows<2>(w, ldw, in_rows, in, ld, o, P, epi);
  for (; o < out_rows; ++o) gemm_rows<1>(w, ldw, in_rows, in, ld, o, P, epi);
}

// The same for a dense out_rows x in_rows weight matrix.
template <typename Epi>
void gemm(const float* w, int out_rows, int in_rows, const float* in, int ld, int P, Epi epi) {
  gemm_strided(w, in_rows, out_rows, in_rows, in, ld, P, epi);
}

template <int OB, int IB>
inline void outer_block(const float* a, int lda, const float* b, int ldb, int P, int o0,
                        int i0, int cols, float* dw) {
  vf acc[OB][IB];
  for (int j = 0; j < OB; ++j)
    for (int t = 0; t < IB; ++t) acc[j][t] = vf{};
  for (int p = 0; p < P; p += V) {
    vf av[OB], bv[IB];
    for (int j = 0; j < OB; ++j) av[j] = load(a + (size_t)(o0 + j) * lda + p);
    for (int t = 0; t < IB; ++t) bv[t] = load(b + (size_t)(i0 + t) * ldb + p);
    for (int j = 0; j < OB; ++j)
      for (int t = 0; t < IB; ++t) acc[j][t] += av[j] * bv[t];
  }
  for (int j = 0; j < OB; ++j)
    for (int t = 0; t < IB; ++t) dw[(size_t)(o0 + j) * cols + i0 + t] += hsum(acc[j][t]);
}

template <int OB>
inline void outer_rows(const float* a, int lda, const float* b, int ldb, int cols, int P,
                       int o0, float* dw) {
  int i = 0;
  for (; i + kOuterCols <= cols; i += kOuterCols)
    outer_block<OB, kOuterCols>(a, lda, b, ldb, P, o0, i, cols, dw);
  for (; i < cols; ++i) outer_block<OB, 1>(a, lda, b, ldb, P, o0, i, cols, dw);
}

// Buffers handed from finished passes and dying operator states to later ones. Graphs
// recorded for autograd create a state per forward; fresh multi-megabyte buffers every step
// would spend more time in the kernel's page faults than in the gate. The pool keeps at most kMaxPooled floats
// (2 GiB), so inputs of ever-changing shapes cannot make it grow without bound.
class BufferPool {
 public:
  static std::vector<float> take(size_t n) {
    std::lock_guard<std::mutex> lock(mutex());
    auto& free = buffers();
    auto it = free.find(n);
    if (it == free.end()) return std::vector<float>(n);
    std::vector<float> buf = std::move(it->second);
    free.erase(it);
    pooled() -= n;
    return buf;
  }
  static void give(std::vector<float>* buf) {
    const size_t n = buf->size();
    if (n == 0) return;
    std::lock_guard<std::mutex> lock(mutex());
    if (pooled() + n <= kMaxPooled) {
      buffers().emplace(n, std::move(*buf));
      pooled() += n;
    }
    std::vector<float>().swap(*buf);
  }

 private:
  static constexpr size_t kMaxPooled = size_t(1) << 29;
  static std::mutex& mutex() { static std::mutex m; return m; }
  static size_t& pooled() { static size_t n = 0; return n; }
  static std::multimap<size_t, std::vector<float>>& buffers() {
    static auto* free = new std::multimap<size_t, std::vector<float>>();
    return *free;
  }
};

// A buffer from the pool that goes back to it when its owner dies. get(n) makes it at
// least n floats (contents unspecified): a size once needed stays, so tiles narrower than
// the first, and states whose inputs shrink, do not trade buffers with the pool.
class Pooled {
 public:
  Pooled() = default;
  Pooled(const Pooled&) = delete;
  Pooled& operator=(const Pooled&) = delete;
  ~Pooled() { BufferPool::give(&buf_); }
  float* get(size_t n) {
    if (buf_.size() < n) { BufferPool::give(&buf_); buf_ = BufferPool::take(n); }
    return buf_.data();
  }
  float* data() { return buf_.data(); }
  const float* data() const { return buf_.data(); }

 private:
  std::vector<float> buf_;
};

// dw[o, i] += sum_p a[o, p] b[i, p]. For wide units (cols >= 64, a multiple of V) it is a
// GEMM against b transposed into bt (P x cols), which sums in registers instead of reducing
// each of the rows x cols dot products across a vector; narrow ones keep the dot products.
void outer(const float* a, int lda, int rows, const float* b, int ldb, int cols, int P,
           float* dw, Pooled* bt) {
  if (cols % V == 0 && cols >= 4 * V) {
    float* t = bt->get((size_t)P * cols);
    for (int i = 0; i < cols; ++i)
      for (int p = 0; p < P; ++p) t[(size_t)p * cols + i] = b[(size_t)i * ldb + p];
    gemm_strided(a, lda, rows, P, t, cols, cols, [&](int o, int i, vf acc) {
      float* d = dw + (size_t)o * cols + i;
      store(d, load(d) + acc);
    });
    return;
  }
  int o = 0;
  for (; o + 4 <= rows; o += 4) outer_rows<4>(a, lda, b, ldb, cols, P, o, dw);
  for (; o < rows; ++o) outer_rows<1>(a, lda, b, ldb, cols, P, o, dw);
}

// Positions of atac_gate's inputs. Its backward's outputs are their gradients at the same
// positions; the backward's inputs are dy, then these shifted by kForwardInputsFrom, then y.
enum GateInput : int {
  kX, kMode, kW1, kGamma1, kBeta1, kMean1, kVar1, kW2, kGamma2, kBeta2, kMean2, kVar2,
  kNumGateInputs
};
enum GateOutput : int { kY, kNumGateOutputs };
enum GateBackwardInput : int { kDy, kForwardInputsFrom };

struct Attrs {
  float eps1, eps2, mom1, mom2;
  bool relu;
};

Attrs parse(const std::unordered_map<std::string, std::string>& attrs) {
  auto get = [&](const char* key, float dflt) {
    auto it = attrs.find(key);
    return it == attrs.end() ? dflt : std::stof(it->second);
  };
  return {get("eps1", 1e-5f), get("eps2", 1e-5f), get("momentum1", 0.9f),
          get("momentum2", 0.9f), get("use_relu", 1.0f) != 0.0f};
}

// The Python side builds the mode probe and this library tests it; build.py defines the
// threshold next to the probe and passes it here, so the two cannot drift apart (and a
// changed threshold changes the cache key, hence rebuilds).
#ifndef ATAC_MODE_THRESHOLD
#error "build with gluon_atac/ops/build.py, which defines ATAC_MODE_THRESHOLD"
#endif

// Batch statistics if the mode probe was normalized with them (see the Python side).
bool batch_stats_mode(MXTensor& mode) {
  const float* m = mode.data<float>();
  return std::fabs(m[1] - m[0]) < (float)ATAC_MODE_THRESHOLD;
}

// One BN as per-channel coefficients: u = sc * a + sh, and the mean and 1/std it used.
struct Norm {
  std::vector<float> mean, var, sc, sh, rs;
  std::vector<float> tsc, tsh;  // sc and sh times -log2(e): the sigmoid's exponent
  void set(const float* m, const float* v, float eps, const float* g, const float* b, int n) {
    mean.assign(m, m + n); var.assign(v, v + n);
    rs.resize(n); sc.resize(n); sh.resize(n); tsc.resize(n); tsh.resize(n);
    for (int c = 0; c < n; ++c) {
      rs[c] = 1.0f / std::sqrt(v[c] + eps);
      sc[c] = g[c] * rs[c];
      sh[c] = b[c] - sc[c] * m[c];
      tsc[c] = -kLog2e * sc[c];
      tsh[c] = -kLog2e * sh[c];
    }
  }
  vf affine(int c, vf a) const { return splat(sc[c]) * a + splat(sh[c]); }
  vf sigmoid_of(int c, vf a) const { return vsigmoid_t(splat(tsc[c]) * a + splat(tsh[c])); }
  vf normalized(int c, vf a) const { return (a - splat(mean[c])) * splat(rs[c]); }
};

// Shapes, pointers and the split into tiles: sample n's pixels [p0, p0 + T) in tile order.
struct Gate {
  int N, C, K, HW, P, T, tiles;  // P: HW rounded up to V; T: tile width, a multiple of V
  bool relu;
  bool keep_z;  // training keeps z = W2 h for the later passes, or recomputes it from a
  const float *x, *w1, *w2;
  const float *g1, *b1, *g2, *b2;
  Norm bn1, bn2;

  Gate(std::vector<MXTensor>& in, bool relu_) : relu(relu_) {
    MXTensor& xt = in[kX];
    N = xt.shape[0]; C = xt.shape[1];
    HW = 1;
    for (size_t d = 2; d < xt.shape.size(); ++d) HW *= xt.shape[d];
    K = in[kW1].shape[0];
    P = (HW + V - 1) / V * V;
    // a tile of C rows near 32 KiB for narrow units; at least 256 pixels, so that wide
    // units reuse each weight block and reduce the weight gradients over enough pixels
    T = std::min(P, std::max(256, (8192 / C + V - 1) / V * V));
    tiles = (HW + T - 1) / T;
    // Training streams several full tensors per pass, more than the L3 holds. Recomputing z
    // costs K multiply-adds per element, storing it and reading it back in three passes
    // 16 bytes of traffic: for K <= 8 recomputing is faster (16-channel units, r = 2,
    // batch 128: forward 18% faster, forward and backward 4%; at K = 16 the forward is 5%
    // slower). It also saves the memory of z.
    keep_z = K > 8;
    x = xt.data<float>(); w1 = in[kW1].data<float>(); w2 = in[kW2].data<float>();
    g1 = in[kGamma1].data<float>(); b1 = in[kBeta1].data<float>();
    g2 = in[kGamma2].data<float>(); b2 = in[kBeta2].data<float>();
  }
  int items() const { return N * tiles; }
  vf h_of(int k, vf a) const {  // relu(BN1(a))
    vf u = bn1.affine(k, a);
    return relu ? vmax(u, vf{}) : u;
  }
};

// One tile: sample n, pixels [p0, p0 + len); width = len rounded up to V.
struct Tile {
  int n, p0, len, width;
  vf tail;  // 1 on the real pixels of the last vector
  Tile(const Gate& g, int item) {
    n = item / g.tiles;
    p0 = (item % g.tiles) * g.T;
    len = std::min(g.T, g.HW - p0);
    width = (len + V - 1) / V * V;
    for (int i = 0; i < V; ++i) tail[i] = (width - V + i < len) ? 1.0f : 0.0f;
  }
  bool full() const { return len == width; }
  vf mask(int p) const { return p + V > len ? tail : splat(1.0f); }
  // offset of (row, pixel p) in an N x rows x HW tensor and in an N x rows x P buffer
  size_t at(const Gate& g, int rows, int row, int p) const {
    return ((size_t)n * rows + row) * g.HW + p0 + p;
  }
  size_t padded(const Gate& g, int rows, int row, int p) const {
    return ((size_t)n * rows + row) * g.P + p0 + p;
  }
};

// Rows of a tile of an N x rows x HW tensor: in place when whole vectors fit, else a
// zero-padded copy.
struct View {
  const float* ptr;
  int ld;
  Pooled copy;
  void bind(const float* base, int rows, const Gate& g, const Tile& t) {
    if (t.full()) { ptr = base + t.at(g, rows, 0, 0); ld = g.HW; return; }
    float* c = copy.get((size_t)rows * t.width);
    std::fill(c, c + (size_t)rows * t.width, 0.0f);
    for (int r = 0; r < rows; ++r)
      std::memcpy(c + (size_t)r * t.width, base + t.at(g, rows, r, 0), t.len * sizeof(float));
    ptr = c; ld = t.width;
  }
  vf get(int row, int p) const { return load(ptr + (size_t)row * ld + p); }
};

// Destination rows of a tile: in place, or a buffer written back by flush().
struct Sink {
  float* ptr;
  int ld;
  Pooled buf;
  float* dst;
  const Gate* g;
  const Tile* t;
  void bind(float* base, int rows, const Gate& gate, const Tile& tile) {
    g = &gate; t = &tile;
    dst = base + tile.at(gate, rows, 0, 0);
    if (tile.full()) { ptr = dst; ld = gate.HW; return; }
    ptr = buf.get((size_t)rows * tile.width); ld = tile.width;
  }
  void put(int row, int p, vf v) { store(ptr + (size_t)row * ld + p, v); }
  void flush(int rows) {
    if (t->full()) return;
    for (int r = 0; r < rows; ++r)
      std::memcpy(dst + (size_t)r * g->HW, ptr + (size_t)r * ld, t->len * sizeof(float));
  }
};

// Per-thread buffers of a pass.
struct Scratch {
  View x, dy;
  Sink out;
  Pooled h, d;  // K x T and max(C, K) x T
  Pooled bt;    // transposed operand of outer()
  explicit Scratch(const Gate& g) {
    h.get((size_t)g.K * g.T);
    d.get((size_t)std::max(g.C, g.K) * g.T);
  }
};

int threads() { return std::max(1, omp_get_max_threads()); }

// Per-thread double sums of two per-channel quantities, and per-thread weight gradients.
struct Sums {
  int n;
  std::vector<std::vector<double>> per_thread;
  Sums(int threads, int n_) : n(n_), per_thread(threads, std::vector<double>(2 * n_, 0.0)) {}
  void add(int c, vf first, vf second) {
    std::vector<double>& s = per_thread[omp_get_thread_num()];
    s[c] += hsum(first); s[n + c] += hsum(second);
  }
  std::vector<double> total() const {
    std::vector<double> out(2 * n, 0.0);
    for (const auto& v : per_thread)
      for (size_t i = 0; i < v.size(); ++i) out[i] += v[i];
    return out;
  }
  // mean and biased variance over m values from the sums of a and a^2
  void moments(double m, std::vector<float>* mean, std::vector<float>* var) const {
    const std::vector<double> s = total();
    mean->resize(n); var->resize(n);
    for (int c = 0; c < n; ++c) {
      double mu = s[c] / m;
      (*mean)[c] = (float)mu;
      (*var)[c] = (float)std::max(0.0, s[n + c] / m - mu * mu);
    }
  }
};

// Runs body(scratch, tile) over all tiles of the batch on every thread.
template <typename Body>
void for_tiles(const Gate& g, Body body) {
#pragma omp parallel num_threads(threads())
  {
    Scratch s(g);
#pragma omp for schedule(static)
    for (int i = 0; i < g.items(); ++i) {
      Tile t(g, i);
      body(s, t);
    }
  }
}

// h = relu(BN1(W1 x)) of a tile into s.h (x already bound).
void tile_h_from_x(const Gate& g, Scratch& s, const Tile& t) {
  float* h = s.h.data();
  const int T = g.T;
  gemm(g.w1, g.K, g.C, s.x.ptr, s.x.ld, t.width, [&](int o, int p, vf a) {
    store(h + (size_t)o * T + p, g.h_of(o, a));
  });
}

// h = relu(BN1(a)) of a tile into s.h from the stored a.
void tile_h_from_a(const Gate& g, const float* a, Scratch& s, const Tile& t) {
  for (int k = 0; k < g.K; ++k)
    for (int p = 0; p < t.width; p += V)
      store(s.h.data() + (size_t)k * g.T + p, g.h_of(k, load(a + t.padded(g, g.K, k, p))));
}

// What the forward keeps for the backward, per operator state.
struct Saved {
  Pooled a, z;  // N x K x P and N x C x P
  int N = -1, HW = -1;
  bool valid = false;
};

// epi(c, p, z) for every z = W2 h of a tile: read back from saved.z, or recomputed from
// saved.a, which leaves h in s.h.
template <typename Epi>
void tile_z(const Gate& g, const Saved& sv, Scratch& s, const Tile& t, Epi epi) {
  if (g.keep_z) {
    const float* z = sv.z.data();
    for (int c = 0; c < g.C; ++c)
      for (int p = 0; p < t.width; p += V) epi(c, p, load(z + t.padded(g, g.C, c, p)));
    return;
  }
  tile_h_from_a(g, sv.a.data(), s, t);
  gemm(g.w2, g.C, g.K, s.h.data(), g.T, t.width, epi);
}

void infer(Gate& g, float* y) {
  for_tiles(g, [&](Scratch& s, const Tile& t) {
    s.x.bind(g.x, g.C, g, t);
    s.out.bind(y, g.C, g, t);
    tile_h_from_x(g, s, t);
    gemm(g.w2, g.C, g.K, s.h.data(), g.T, t.width, [&](int o, int p, vf z) {
      s.out.put(o, p, s.x.get(o, p) * g.bn2.sigmoid_of(o, z));
    });
    s.out.flush(g.C);
  });
}

// a = W1 x into saved.a; returns the sums of a and a^2 per channel.
Sums store_a(Gate& g, Saved* sv) {
  Sums sums(threads(), g.K);
  float* a = sv->a.data();
  for_tiles(g, [&](Scratch& s, const Tile& t) {
    s.x.bind(g.x, g.C, g, t);
    std::vector<vf> sum(g.K, vf{}), sq(g.K, vf{});
    gemm(g.w1, g.K, g.C, s.x.ptr, s.x.ld, t.width, [&](int o, int p, vf v) {
      store(a + t.padded(g, g.K, o, p), v);
      sum[o] += v; sq[o] += v * v;  // padded pixels hold a = 0
    });
    for (int o = 0; o < g.K; ++o) sums.add(o, sum[o], sq[o]);
  });
  return sums;
}

// z = W2 relu(BN1(a)) into saved.z (if the gate keeps z); returns the sums of z and z^2
// per channel.
Sums store_z(Gate& g, Saved* sv) {
  Sums sums(threads(), g.C);
  float* z = sv->z.data();
  for_tiles(g, [&](Scratch& s, const Tile& t) {
    tile_h_from_a(g, sv->a.data(), s, t);
    std::vector<vf> sum(g.C, vf{}), sq(g.C, vf{});
    gemm(g.w2, g.C, g.K, s.h.data(), g.T, t.width, [&](int o, int p, vf v) {
      if (g.keep_z) store(z + t.padded(g, g.C, o, p), v);
      v *= t.mask(p);
      sum[o] += v; sq[o] += v * v;
    });
    for (int o = 0; o < g.C; ++o) sums.add(o, sum[o], sq[o]);
  });
  return sums;
}

void prepare_saved(const Gate& g, Saved* sv) {
  sv->a.get((size_t)g.N * g.K * g.P);
  if (g.keep_z) sv->z.get((size_t)g.N * g.C * g.P);
  sv->N = g.N; sv->HW = g.HW;
}

// Fills `saved` with a and z under the coefficients already in g (running statistics).
void recompute_saved(Gate& g, Saved* sv) {
  prepare_saved(g, sv);
  store_a(g, sv);
  store_z(g, sv);
  sv->valid = true;
}

void train_forward(Gate& g, const Attrs& at, Saved* sv, float* y) {
  prepare_saved(g, sv);
  const double M = (double)g.N * g.HW;
  std::vector<float> mean, var;
  store_a(g, sv).moments(M, &mean, &var);
  g.bn1.set(mean.data(), var.data(), at.eps1, g.g1, g.b1, g.K);
  store_z(g, sv).moments(M, &mean, &var);
  g.bn2.set(mean.data(), var.data(), at.eps2, g.g2, g.b2, g.C);
  sv->valid = true;
  for_tiles(g, [&](Scratch& s, const Tile& t) {
    s.x.bind(g.x, g.C, g, t);
    s.out.bind(y, g.C, g, t);
    tile_z(g, *sv, s, t, [&](int c, int p, vf z) {
      s.out.put(c, p, s.x.get(c, p) * g.bn2.sigmoid_of(c, z));
    });
    s.out.flush(g.C);
  });
}

// BN input gradient d_in = k (d_out - cb - xhat cg) from the sums of d_out (s[0:n]) and
// d_out * xhat (s[n:2n]); the centring terms cb, cg exist only with batch statistics.
struct NormGrad {
  std::vector<float> k, cb, cg;
  NormGrad(const std::vector<double>& s, const float* gamma, const Norm& bn, int n, bool batch,
           double m)
      : k(n), cb(n, 0.0f), cg(n, 0.0f) {
    for (int c = 0; c < n; ++c) {
      k[c] = gamma[c] * bn.rs[c];
      if (batch) { cb[c] = (float)(s[c] / m); cg[c] = (float)(s[n + c] / m); }
    }
  }
  vf apply(int c, vf d, vf xhat) const {
    return splat(k[c]) * (d - splat(cb[c]) - xhat * splat(cg[c]));
  }
};

std::vector<float> transposed(const float* w, int rows, int cols) {
  std::vector<float> t((size_t)rows * cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) t[(size_t)c * rows + r] = w[(size_t)r * cols + c];
  return t;
}

void reduce(const std::vector<std::vector<float>>& parts, float* dst) {
  std::fill(dst, dst + parts[0].size(), 0.0f);
  for (const auto& part : parts)
    for (size_t i = 0; i < part.size(); ++i) dst[i] += part[i];
}

// Backward. in: dy, then the forward's 12 inputs. out: dx, dmode, dw1, dg1, db1, dm1, dv1,
// dw2, dg2, db2, dm2, dv2.
void train_backward(Gate& g, const Attrs& at, bool batch, const float* dy_base, Saved* sv,
                    std::vector<MXTensor>& in, std::vector<MXTensor>& out) {
  const int C = g.C, K = g.K, nt = threads();
  const double M = (double)g.N * g.HW;
  const float* a = sv->a.data();
  // dL and du of the whole batch: whole-batch sums stand between their passes
  Pooled dl_buf, du_buf;
  float* dl = dl_buf.get((size_t)g.N * C * g.P);
  float* du = du_buf.get((size_t)g.N * K * g.P);

  // Pass 1: dL = dy x s(1 - s); sums of dL and dL * zhat give dbeta2 and dgamma2. dx
  // starts as dy s, so that pass 3 need not evaluate the sigmoid again.
  float* dx = out[kX].data<float>();
  Sums s2(nt, C);
  for_tiles(g, [&](Scratch& s, const Tile& t) {
    s.x.bind(g.x, C, g, t);
    s.dy.bind(dy_base, C, g, t);
    s.out.bind(dx, C, g, t);
    std::vector<vf> sd(C, vf{}), sdz(C, vf{});
    tile_z(g, *sv, s, t, [&](int c, int p, vf z) {
      vf sg = g.bn2.sigmoid_of(c, z);
      vf dys = s.dy.get(c, p) * sg;
      s.out.put(c, p, dys);
      vf d = dys * s.x.get(c, p) * (splat(1.0f) - sg);  // padded pixels: x = 0
      store(dl + t.padded(g, C, c, p), d);
      sd[c] += d;
      sdz[c] += d * g.bn2.normalized(c, z);
    });
    for (int c = 0; c < C; ++c) s2.add(c, sd[c], sdz[c]);
    s.out.flush(C);
  });
  const std::vector<double> t2 = s2.total();
  const NormGrad ng2(t2, g.g2, g.bn2, C, batch, M);

  // Pass 2: dz, dW2 = sum dz h^T, du = W2^T dz [u > 0]; sums of du, du * ahat.
  const std::vector<float> w2t = transposed(g.w2, C, K), w1t = transposed(g.w1, K, C);
  Sums s1(nt, K);
  std::vector<std::vector<float>> dw2(nt, std::vector<float>((size_t)C * K, 0.0f));
  for_tiles(g, [&](Scratch& s, const Tile& t) {
    float* dz = s.d.data();
    tile_z(g, *sv, s, t, [&](int c, int p, vf z) {
      vf d = ng2.apply(c, load(dl + t.padded(g, C, c, p)), g.bn2.normalized(c, z));
      store(dz + (size_t)c * g.T + p, d * t.mask(p));
    });
    if (g.keep_z) tile_h_from_a(g, a, s, t);  // recomputing z left h in s.h
    outer(dz, g.T, C, s.h.data(), g.T, K, t.width, dw2[omp_get_thread_num()].data(), &s.bt);
    std::vector<vf> sum(K, vf{}), sda(K, vf{});
    gemm(w2t.data(), K, C, dz, g.T, t.width, [&](int k, int p, vf dh) {
      size_t i = t.padded(g, K, k, p);
      vf av = load(a + i);
      vf d = g.relu ? (g.bn1.affine(k, av) > vf{} ? dh : vf{}) : dh;
      store(du + i, d);
      sum[k] += d; sda[k] += d * g.bn1.normalized(k, av);  // padded pixels: dz = 0
    });
    for (int k = 0; k < K; ++k) s1.add(k, sum[k], sda[k]);
  });
  const std::vector<double> t1 = s1.total();
  const NormGrad ng1(t1, g.g1, g.bn1, K, batch, M);

  // Pass 3: da, dW1 = sum da x^T, dx = dy s + W1^T da.
  std::vector<std::vector<float>> dw1(nt, std::vector<float>((size_t)K * C, 0.0f));
  for_tiles(g, [&](Scratch& s, const Tile& t) {
    float* da = s.d.data();
    for (int k = 0; k < K; ++k)
      for (int p = 0; p < t.width; p += V) {
        size_t i = t.padded(g, K, k, p);
        vf ah = g.bn1.normalized(k, load(a + i));
        store(da + (size_t)k * g.T + p, ng1.apply(k, load(du + i), ah) * t.mask(p));
      }
    s.x.bind(g.x, C, g, t);
    s.dy.bind(dx, C, g, t);  // dy s from pass 1
    s.out.bind(dx, C, g, t);
    outer(da, g.T, K, s.x.ptr, s.x.ld, C, t.width, dw1[omp_get_thread_num()].data(), &s.bt);
    gemm(w1t.data(), C, K, da, g.T, t.width, [&](int c, int p, vf acc) {
      s.out.put(c, p, s.dy.get(c, p) + acc);
    });
    s.out.flush(C);
  });

  reduce(dw1, out[kW1].data<float>());
  reduce(dw2, out[kW2].data<float>());
  for (int k = 0; k < K; ++k) {
    out[kGamma1].data<float>()[k] = (float)t1[K + k];
    out[kBeta1].data<float>()[k] = (float)t1[k];
  }
  for (int c = 0; c < C; ++c) {
    out[kGamma2].data<float>()[c] = (float)t2[C + c];
    out[kBeta2].data<float>()[c] = (float)t2[c];
  }
  for (int i : {kMode, kMean1, kVar1, kMean2, kVar2}) {  // the mode probe and running statistics: no gradient
    if (out[i].data_ptr != nullptr)
      std::fill(out[i].data<float>(), out[i].data<float>() + out[i].size(), 0.0f);
  }
  if (batch) {
    // MXNet's BatchNorm moves its running statistics in backward: do the same.
    auto update = [](float* run, const std::vector<float>& value, float mom) {
      for (size_t c = 0; c < value.size(); ++c) run[c] = run[c] * mom + value[c] * (1 - mom);
    };
    update(in[kMean1].data<float>(), g.bn1.mean, at.mom1);
    update(in[kVar1].data<float>(), g.bn1.var, at.mom1);
    update(in[kMean2].data<float>(), g.bn2.mean, at.mom2);
    update(in[kVar2].data<float>(), g.bn2.var, at.mom2);
  }
}

// The operator's state: attributes, plus what the forward keeps for the backward.
class GateOp : public CustomStatefulOp {
 public:
  explicit GateOp(const Attrs& at) : at_(at) {}

  MXReturnValue Forward(std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                        const OpResource& res) override {
    std::vector<MXTensor>& in = *inputs;
    Gate g(in, at_.relu);
    float* y = (*outputs)[kY].data<float>();
    batch_ = batch_stats_mode(in[kMode]);
    if (batch_) {
      train_forward(g, at_, &saved_, y);
      bn1_ = g.bn1; bn2_ = g.bn2;
      return MX_SUCCESS;
    }
    // running statistics: a later backward recomputes a and z if it needs them
    saved_.valid = false;
    set_running(&g, in);
    infer(g, y);
    return MX_SUCCESS;
  }

  MXReturnValue Backward(std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                         const OpResource& res) override {
    std::vector<MXTensor>& all = *inputs;
    std::vector<MXTensor> in(all.begin() + kForwardInputsFrom,
                             all.begin() + kForwardInputsFrom + kNumGateInputs);
    Gate g(in, at_.relu);
    if (batch_ && saved_.valid && saved_.N == g.N && saved_.HW == g.HW) {
      g.bn1 = bn1_; g.bn2 = bn2_;
    } else {
      batch_ = false;
      set_running(&g, in);
      recompute_saved(g, &saved_);
    }
    train_backward(g, at_, batch_, all[kDy].data<float>(), &saved_, in, *outputs);
    saved_.valid = false;  // one backward per forward
    return MX_SUCCESS;
  }

 private:
  void set_running(Gate* g, std::vector<MXTensor>& in) {
    g->bn1.set(in[kMean1].data<float>(), in[kVar1].data<float>(), at_.eps1, g->g1, g->b1,
               g->K);
    g->bn2.set(in[kMean2].data<float>(), in[kVar2].data<float>(), at_.eps2, g->g2, g->b2,
               g->C);
  }

  Attrs at_;
  bool batch_ = false;
  Norm bn1_, bn2_;
  Saved saved_;
};

MXReturnValue create_state(const std::unordered_map<std::string, std::string>& attrs,
                           const MXContext& ctx,
                           const std::vector<std::vector<unsigned int>>& in_shapes,
                           const std::vector<int> in_types, CustomStatefulOp** op) {
  *op = CustomStatefulOp::create<GateOp>(parse(attrs));
  return MX_SUCCESS;
}

MXReturnValue parse_attrs(const std::unordered_map<std::string, std::string>& attrs,
                          int* num_in, int* num_out) {
  *num_in = kNumGateInputs;
  *num_out = kNumGateOutputs;
  return MX_SUCCESS;
}

MXReturnValue infer_type(const std::unordered_map<std::string, std::string>& attrs,
                         std::vector<int>* in_types, std::vector<int>* out_types) {
  for (int t : *in_types) {
    if (t != kFloat32) {
      MX_ERROR_MSG << "atac_gate supports float32 only";
      return MX_FAIL;
    }
  }
  (*out_types)[kY] = kFloat32;
  return MX_SUCCESS;
}

MXReturnValue infer_shape(const std::unordered_map<std::string, std::string>& attrs,
                          std::vector<std::vector<unsigned int>>* in_shapes,
                          std::vector<std::vector<unsigned int>>* out_shapes) {
  const auto& x = (*in_shapes)[kX];
  const auto& w1 = (*in_shapes)[kW1];
  if (x.size() < 3 || w1.size() < 2 || w1[1] != x[1]) {
    MX_ERROR_MSG << "atac_gate: x must be N,C,spatial... and w1 K,C,1,1";
    return MX_FAIL;
  }
  (*out_shapes)[kY] = x;
  return MX_SUCCESS;
}

MXReturnValue mutate_inputs(const std::unordered_map<std::string, std::string>& attrs,
                            std::vector<int>* indices) {
  // running statistics (kept in sync with the backward that moves them)
  *indices = {kMean1, kVar1, kMean2, kVar2};
  return MX_SUCCESS;
}

}  // namespace

REGISTER_OP(atac_gate)
    .setCreateOpState(create_state, "cpu")
    .setParseAttrs(parse_attrs)
    .setInferType(infer_type)
    .setInferShape(infer_shape)
    .setMutateInputs(mutate_inputs);

MXReturnValue initialize(int version) {
  return version >= 10700 ? MX_SUCCESS : MX_FAIL;
}

// The instruction set this build vectorizes for ("avx512", "avx2" or "generic"): the
// Python side reads it (ctypes) to decide whether the operator beats the Gluon graph.
extern "C" __attribute__((visibility("default"))) const char* atac_gate_isa() {
  return ATAC_ISA;
}

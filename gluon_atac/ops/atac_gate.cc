// Fused ATAC gate for MXNet's custom-operator library API (lib_api.h).
//
//   a = W1 x,  u = BN1(a),  h = relu(u),  z = W2 h,  L = BN2(z),  y = x * sigmoid(L)
//
// per pixel, for NCHW float32 tensors on CPU. One sample's planes (C x HW) fit in L2, so
// every pass works sample by sample on small GEMMs whose epilogues apply BN, ReLU,
// sigmoid and the gating multiply, instead of writing the six intermediate tensors an
// unfused graph stores. Batch statistics make passes over the whole batch unavoidable
// (BN2's statistics depend on BN1's), so training recomputes the cheap point-wise
// products rather than storing them.
//
// Inputs : x, mode, w1 (k,C,1,1), gamma1, beta1, mean1, var1, w2 (C,k,1,1), gamma2, beta2,
//          mean2, var2. `mode` is the output of a tiny BatchNorm (see Python side): its
//          value tells batch-statistics mode from running-statistics mode, which custom
//          operators are otherwise not told.
// Outputs: y, saved (2k + 2C): the mean and biased variance each BN normalized with.
// Backward updates the running statistics, as MXNet's own BatchNorm does on CPU.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "lib_api.h"

using namespace mxnet::ext;

namespace {

constexpr int V = 16;  // floats per vector
typedef float vf __attribute__((vector_size(64)));
typedef int vi __attribute__((vector_size(64)));

inline vf load(const float* p) { vf v; std::memcpy(&v, p, sizeof(v)); return v; }
inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof(v)); }
inline vf splat(float f) { return vf{} + f; }
inline float hsum(vf v) { float s = 0; for (int i = 0; i < V; ++i) s += v[i]; return s; }
inline vf vmax(vf a, vf b) { return a > b ? a : b; }
inline vf vmin(vf a, vf b) { return a < b ? a : b; }

// exp(x) to about 2 ulp (Cephes expf polynomial, range reduced by ln 2).
inline vf vexp(vf x) {
  x = vmin(vmax(x, splat(-87.0f)), splat(88.0f));
  const vf magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  vf n = (x * splat(1.44269504088896341f) + magic) - magic;
  vf r = x - n * splat(0.693359375f) - n * splat(-2.12194440e-4f);
  vf p = splat(1.9875691500E-4f);
  p = p * r + splat(1.3981999507E-3f);
  p = p * r + splat(8.3334519073E-3f);
  p = p * r + splat(4.1665795894E-2f);
  p = p * r + splat(1.6666665459E-1f);
  p = p * r + splat(5.0000001201E-1f);
  p = p * r * r + r + splat(1.0f);
  vi bits = (vi)p + (__builtin_convertvector(n, vi) << 23);
  return (vf)bits;
}

inline vf vsigmoid(vf x) { return splat(1.0f) / (splat(1.0f) + vexp(-x)); }

// out-block of OB rows x PB vectors: acc = W[o0.., :] . in[:, p0..]; epi(o, p, acc).
template <int OB, int PB, typename Epi>
inline void gemm_block(const float* w, int in_rows, const float* in, int ld, int o0, int p0,
                       Epi& epi) {
  vf acc[OB][PB];
  for (int j = 0; j < OB; ++j)
    for (int q = 0; q < PB; ++q) acc[j][q] = vf{};
  for (int i = 0; i < in_rows; ++i) {
    vf xv[PB];
    for (int q = 0; q < PB; ++q) xv[q] = load(in + (size_t)i * ld + p0 + q * V);
    for (int j = 0; j < OB; ++j) {
      vf wv = splat(w[(size_t)(o0 + j) * in_rows + i]);
      for (int q = 0; q < PB; ++q) acc[j][q] += wv * xv[q];
    }
  }
  for (int j = 0; j < OB; ++j)
    for (int q = 0; q < PB; ++q) epi(o0 + j, p0 + q * V, acc[j][q]);
}

template <int OB, typename Epi>
inline void gemm_rows(const float* w, int in_rows, const float* in, int ld, int o0, int P,
                      Epi& epi) {
  int p = 0;
  for (; p + 2 * V <= P; p += 2 * V) gemm_block<OB, 2>(w, in_rows, in, ld, o0, p, epi);
  if (p < P) gemm_block<OB, 1>(w, in_rows, in, ld, o0, p, epi);
}

// For o < out_rows and vectors p < P (P a multiple of V): epi(o, p, sum_i w[o,i] in[i,p]).
template <typename Epi>
void gemm(const float* w, int out_rows, int in_rows, const float* in, int ld, int P, Epi epi) {
  int o = 0;
  for (; o + 4 <= out_rows; o += 4) gemm_rows<4>(w, in_rows, in, ld, o, P, epi);
  for (; o < out_rows; ++o) gemm_rows<1>(w, in_rows, in, ld, o, P, epi);
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
  for (; i + 4 <= cols; i += 4) outer_block<OB, 4>(a, lda, b, ldb, P, o0, i, cols, dw);
  for (; i < cols; ++i) outer_block<OB, 1>(a, lda, b, ldb, P, o0, i, cols, dw);
}

// dw[o, i] += sum_p a[o, p] b[i, p]
void outer(const float* a, int lda, int rows, const float* b, int ldb, int cols, int P,
           float* dw) {
  int o = 0;
  for (; o + 4 <= rows; o += 4) outer_rows<4>(a, lda, b, ldb, cols, P, o, dw);
  for (; o < rows; ++o) outer_rows<1>(a, lda, b, ldb, cols, P, o, dw);
}

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

// Batch statistics if the mode probe was normalized with them (see the Python side).
bool batch_stats_mode(MXTensor& mode) {
  const float* m = mode.data<float>();
  return std::fabs(m[1] - m[0]) < 4.0f;
}

// Shapes, pointers and per-channel coefficients shared by all passes.
struct Gate {
  int N, C, K, HW, P;
  bool relu, direct;  // direct: HW is a multiple of V, planes are used in place
  const float *x, *w1, *w2;
  std::vector<float> w1t, w2t;        // transposed weights for the backward products
  std::vector<float> sc1, sh1, sc2, sh2;  // BN as scale/shift: u = sc*a + sh
  std::vector<float> mu1, rs1, mu2, rs2;  // mean and 1/std each BN used
  vf tail;                                // 1 on real pixels of the last vector

  Gate(std::vector<MXTensor>& in, bool relu_) : relu(relu_) {
    MXTensor& xt = in[0];
    N = xt.shape[0]; C = xt.shape[1];
    HW = 1;
    for (size_t d = 2; d < xt.shape.size(); ++d) HW *= xt.shape[d];
    K = in[2].shape[0];
    P = (HW + V - 1) / V * V;
    direct = (P == HW);
    x = xt.data<float>(); w1 = in[2].data<float>(); w2 = in[7].data<float>();
    for (int i = 0; i < V; ++i) tail[i] = (P - V + i < HW) ? 1.0f : 0.0f;
  }

  void set_stats1(const float* mean, const float* var, float eps, const float* g,
                  const float* b) {
    fill(mean, var, eps, g, b, K, &mu1, &rs1, &sc1, &sh1);
  }
  void set_stats2(const float* mean, const float* var, float eps, const float* g,
                  const float* b) {
    fill(mean, var, eps, g, b, C, &mu2, &rs2, &sc2, &sh2);
  }
  static void fill(const float* mean, const float* var, float eps, const float* g,
                   const float* b, int n, std::vector<float>* mu, std::vector<float>* rs,
                   std::vector<float>* sc, std::vector<float>* sh) {
    mu->assign(mean, mean + n);
    rs->resize(n); sc->resize(n); sh->resize(n);
    for (int c = 0; c < n; ++c) {
      (*rs)[c] = 1.0f / std::sqrt(var[c] + eps);
      (*sc)[c] = g[c] * (*rs)[c];
      (*sh)[c] = b[c] - (*sc)[c] * mean[c];
    }
  }
  void transpose_weights() {
    w1t.resize((size_t)K * C); w2t.resize((size_t)K * C);
    for (int k = 0; k < K; ++k)
      for (int c = 0; c < C; ++c) {
        w1t[(size_t)c * K + k] = w1[(size_t)k * C + c];
        w2t[(size_t)k * C + c] = w2[(size_t)c * K + k];
      }
  }
  vf mask(int p) const { return p + V > HW ? tail : splat(1.0f); }
};

// One sample's planes: a view of the tensor when HW is a multiple of V, else a zero-padded
// copy (ld = P either way).
struct Planes {
  const float* ptr;
  std::vector<float> copy;
  void bind(const float* src, int rows, const Gate& g) {
    if (g.direct) { ptr = src; return; }
    copy.assign((size_t)rows * g.P, 0.0f);
    for (int r = 0; r < rows; ++r)
      std::memcpy(&copy[(size_t)r * g.P], src + (size_t)r * g.HW, g.HW * sizeof(float));
    ptr = copy.data();
  }
};

void write_planes(const std::vector<float>& buf, int rows, const Gate& g, float* dst) {
  for (int r = 0; r < rows; ++r)
    std::memcpy(dst + (size_t)r * g.HW, &buf[(size_t)r * g.P], g.HW * sizeof(float));
}

// Per-thread scratch of the forward chain.
struct Scratch {
  std::vector<float> a, h, z, s, d1, d2, out;
  Planes xp, dyp;
  void size(const Gate& g) {
    size_t kp = (size_t)g.K * g.P, cp = (size_t)g.C * g.P;
    a.resize(kp); h.resize(kp); z.resize(cp); s.resize(cp);
    d1.resize(cp); d2.resize(kp); out.resize(cp);
  }
};

// a = W1 x and h = relu(sc1 a + sh1) for one sample (x planes already bound).
void chain_h(const Gate& g, Scratch& t) {
  float* a = t.a.data();
  float* h = t.h.data();
  const float* sc = g.sc1.data();
  const float* sh = g.sh1.data();
  const bool relu = g.relu;
  const int P = g.P;
  gemm(g.w1, g.K, g.C, t.xp.ptr, P, P, [&](int o, int p, vf acc) {
    store(a + (size_t)o * P + p, acc);
    vf u = splat(sc[o]) * acc + splat(sh[o]);
    store(h + (size_t)o * P + p, relu ? vmax(u, vf{}) : u);
  });
}

// z = W2 h into t.z and s = sigmoid(sc2 z + sh2) into t.s.
void chain_s(const Gate& g, Scratch& t) {
  float* z = t.z.data();
  float* s = t.s.data();
  const float* sc = g.sc2.data();
  const float* sh = g.sh2.data();
  const int P = g.P;
  gemm(g.w2, g.C, g.K, t.h.data(), P, P, [&](int o, int p, vf acc) {
    store(z + (size_t)o * P + p, acc);
    store(s + (size_t)o * P + p, vsigmoid(splat(sc[o]) * acc + splat(sh[o])));
  });
}

// Per-thread double accumulators reduced after a parallel pass.
struct Sums {
  std::vector<std::vector<double>> per_thread;
  Sums(int threads, size_t n) : per_thread(threads, std::vector<double>(n, 0.0)) {}
  std::vector<double>& mine() { return per_thread[omp_get_thread_num()]; }
  std::vector<double> total() const {
    std::vector<double> out(per_thread[0].size(), 0.0);
    for (const auto& v : per_thread)
      for (size_t i = 0; i < v.size(); ++i) out[i] += v[i];
    return out;
  }
};

// mean and biased variance from sums of x and x^2 over m values.
void moments(const std::vector<double>& s, int n, double m, float* mean, float* var) {
  for (int c = 0; c < n; ++c) {
    double mu = s[c] / m;
    mean[c] = (float)mu;
    var[c] = (float)std::max(0.0, s[n + c] / m - mu * mu);
  }
}

int threads() { return std::max(1, omp_get_max_threads()); }

MXReturnValue forward(const std::unordered_map<std::string, std::string>& attrs,
                      std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                      const OpResource& res) {
  std::vector<MXTensor>& in = *inputs;
  const Attrs at = parse(attrs);
  Gate g(in, at.relu);
  const bool batch = batch_stats_mode(in[1]);
  float* y = (*outputs)[0].data<float>();
  float* saved = (*outputs)[1].data<float>();
  float *mean1 = saved, *var1 = saved + g.K, *mean2 = saved + 2 * g.K,
        *var2 = saved + 2 * g.K + g.C;
  const float *g1 = in[3].data<float>(), *b1 = in[4].data<float>();
  const float *g2 = in[8].data<float>(), *b2 = in[9].data<float>();
  const int nt = threads();
  const double M = (double)g.N * g.HW;
  const int N = g.N, K = g.K, C = g.C, P = g.P;

  if (batch) {
    // Pass 1: statistics of a = W1 x.
    Sums s1(nt, 2 * (size_t)K);
#pragma omp parallel num_threads(nt)
    {
      Scratch t; t.size(g);
      std::vector<double>& acc = s1.mine();
#pragma omp for schedule(static)
      for (int n = 0; n < N; ++n) {
        t.xp.bind(g.x + (size_t)n * C * g.HW, C, g);
        std::vector<vf> sum(K, vf{}), sq(K, vf{});
        gemm(g.w1, K, C, t.xp.ptr, P, P, [&](int o, int, vf a) {
          sum[o] += a; sq[o] += a * a;  // padded pixels hold a = 0
        });
        for (int o = 0; o < K; ++o) { acc[o] += hsum(sum[o]); acc[K + o] += hsum(sq[o]); }
      }
    }
    moments(s1.total(), K, M, mean1, var1);
    g.set_stats1(mean1, var1, at.eps1, g1, b1);
    // Pass 2: statistics of z = W2 relu(BN1(a)).
    Sums s2(nt, 2 * (size_t)C);
#pragma omp parallel num_threads(nt)
    {
      Scratch t; t.size(g);
      std::vector<double>& acc = s2.mine();
#pragma omp for schedule(static)
      for (int n = 0; n < N; ++n) {
        t.xp.bind(g.x + (size_t)n * C * g.HW, C, g);
        chain_h(g, t);
        std::vector<vf> sum(C, vf{}), sq(C, vf{});
        gemm(g.w2, C, K, t.h.data(), P, P, [&](int o, int p, vf z) {
          z *= g.mask(p);
          sum[o] += z; sq[o] += z * z;
        });
        for (int o = 0; o < C; ++o) { acc[o] += hsum(sum[o]); acc[C + o] += hsum(sq[o]); }
      }
    }
    moments(s2.total(), C, M, mean2, var2);
    g.set_stats2(mean2, var2, at.eps2, g2, b2);
  } else {
    std::memcpy(mean1, in[5].data<float>(), K * sizeof(float));
    std::memcpy(var1, in[6].data<float>(), K * sizeof(float));
    std::memcpy(mean2, in[10].data<float>(), C * sizeof(float));
    std::memcpy(var2, in[11].data<float>(), C * sizeof(float));
    g.set_stats1(mean1, var1, at.eps1, g1, b1);
    g.set_stats2(mean2, var2, at.eps2, g2, b2);
  }
  // Output pass: y = x * sigmoid(BN2(W2 relu(BN1(W1 x)))).
#pragma omp parallel num_threads(nt)
  {
    Scratch t; t.size(g);
#pragma omp for schedule(static)
    for (int n = 0; n < N; ++n) {
      const size_t off = (size_t)n * C * g.HW;
      t.xp.bind(g.x + off, C, g);
      chain_h(g, t);
      const float* xp = t.xp.ptr;
      float* dst = g.direct ? y + off : t.out.data();
      const float* sc = g.sc2.data();
      const float* sh = g.sh2.data();
      gemm(g.w2, C, K, t.h.data(), P, P, [&](int o, int p, vf z) {
        size_t i = (size_t)o * P + p;
        store(dst + i, load(xp + i) * vsigmoid(splat(sc[o]) * z + splat(sh[o])));
      });
      if (!g.direct) write_planes(t.out, C, g, y + off);
    }
  }
  return MX_SUCCESS;
}

// BN input gradient as d_in = k (d_out - cb - xhat cg) from the sums of d_out (s[0:n]) and
// d_out * xhat (s[n:2n]); the centring terms cb, cg exist only with batch statistics.
void bn_grad_coefficients(const std::vector<double>& s, const float* gamma,
                          const std::vector<float>& rs, int n, bool batch, double m,
                          std::vector<float>* k, std::vector<float>* cb,
                          std::vector<float>* cg) {
  k->resize(n); cb->assign(n, 0.0f); cg->assign(n, 0.0f);
  for (int c = 0; c < n; ++c) {
    (*k)[c] = gamma[c] * rs[c];
    if (batch) { (*cb)[c] = (float)(s[c] / m); (*cg)[c] = (float)(s[n + c] / m); }
  }
}

// Backward. inputs: dy, dsaved, x, mode, w1, g1, b1, m1, v1, w2, g2, b2, m2, v2, y, saved.
// outputs: dx, dmode, dw1, dg1, db1, dm1, dv1, dw2, dg2, db2, dm2, dv2.
MXReturnValue backward(const std::unordered_map<std::string, std::string>& attrs,
                       std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                       const OpResource& res) {
  std::vector<MXTensor>& all = *inputs;
  std::vector<MXTensor> in(all.begin() + 2, all.begin() + 14);  // the forward's inputs
  std::vector<MXTensor>& out = *outputs;
  const Attrs at = parse(attrs);
  Gate g(in, at.relu);
  const bool batch = batch_stats_mode(in[1]);
  const float* dy = all[0].data<float>();
  const float* saved = all[15].data<float>();
  const int N = g.N, K = g.K, C = g.C, P = g.P;
  const float *mean1 = saved, *var1 = saved + K, *mean2 = saved + 2 * K,
              *var2 = saved + 2 * K + C;
  const float *g1 = in[3].data<float>(), *b1 = in[4].data<float>();
  const float *g2 = in[8].data<float>(), *b2 = in[9].data<float>();
  g.set_stats1(mean1, var1, at.eps1, g1, b1);
  g.set_stats2(mean2, var2, at.eps2, g2, b2);
  g.transpose_weights();
  const int nt = threads();
  const double M = (double)N * g.HW;

  // Binds sample `off` of x and dy and recomputes its forward chain (a, h, z, s).
  auto recompute = [&](Scratch& t, size_t off) {
    t.xp.bind(g.x + off, C, g);
    t.dyp.bind(dy + off, C, g);
    chain_h(g, t);
    chain_s(g, t);
  };

  // Pass 1: dL = dy x s(1-s); sums of dL and dL * zhat give dbeta2 and dgamma2.
  Sums s2(nt, 2 * (size_t)C);
#pragma omp parallel num_threads(nt)
  {
    Scratch t; t.size(g);
    std::vector<double>& acc = s2.mine();
#pragma omp for schedule(static)
    for (int n = 0; n < N; ++n) {
      const size_t off = (size_t)n * C * g.HW;
      recompute(t, off);
      for (int c = 0; c < C; ++c) {
        vf sd = vf{}, sdz = vf{};
        const vf mu = splat(g.mu2[c]), rs = splat(g.rs2[c]);
        for (int p = 0; p < P; p += V) {
          size_t i = (size_t)c * P + p;
          vf s = load(&t.s[i]);
          vf dl = load(t.dyp.ptr + i) * load(t.xp.ptr + i) * s * (splat(1.0f) - s);
          sd += dl;
          sdz += dl * (load(&t.z[i]) - mu) * rs * g.mask(p);
        }
        acc[c] += hsum(sd); acc[C + c] += hsum(sdz);
      }
    }
  }
  const std::vector<double> t2 = s2.total();
  std::vector<float> k2, cb2, cg2;
  bn_grad_coefficients(t2, g2, g.rs2, C, batch, M, &k2, &cb2, &cg2);

  // dz for one sample into t.d1 (needs t.s, t.z); then dh = W2^T dz into t.d2.
  auto dz_dh = [&](Scratch& t) {
    for (int c = 0; c < C; ++c) {
      const vf mu = splat(g.mu2[c]), rs = splat(g.rs2[c]);
      const vf kc = splat(k2[c]), bc = splat(cb2[c]), gc = splat(cg2[c]);
      for (int p = 0; p < P; p += V) {
        size_t i = (size_t)c * P + p;
        vf s = load(&t.s[i]);
        vf dl = load(t.dyp.ptr + i) * load(t.xp.ptr + i) * s * (splat(1.0f) - s);
        vf zh = (load(&t.z[i]) - mu) * rs;
        store(&t.d1[i], kc * (dl - bc - zh * gc) * g.mask(p));
      }
    }
    float* dh = t.d2.data();
    gemm(g.w2t.data(), K, C, t.d1.data(), P, P,
         [&](int o, int p, vf acc) { store(dh + (size_t)o * P + p, acc); });
  };
  // du = dh * [u > 0], in place in t.d2.
  auto relu_grad = [&](Scratch& t) {
    if (!g.relu) return;
    for (int k = 0; k < K; ++k)
      for (int p = 0; p < P; p += V) {
        size_t i = (size_t)k * P + p;
        vf u = splat(g.sc1[k]) * load(&t.a[i]) + splat(g.sh1[k]);
        vf du = load(&t.d2[i]);
        store(&t.d2[i], u > vf{} ? du : vf{});
      }
  };

  // Pass 2: dW2 = sum dz h^T, and sums of du, du * ahat give dbeta1, dgamma1.
  Sums s1(nt, 2 * (size_t)K);
  std::vector<std::vector<float>> dw2(nt, std::vector<float>((size_t)C * K, 0.0f));
#pragma omp parallel num_threads(nt)
  {
    Scratch t; t.size(g);
    std::vector<double>& acc = s1.mine();
    float* dw = dw2[omp_get_thread_num()].data();
#pragma omp for schedule(static)
    for (int n = 0; n < N; ++n) {
      const size_t off = (size_t)n * C * g.HW;
      recompute(t, off);
      dz_dh(t);
      outer(t.d1.data(), P, C, t.h.data(), P, K, P, dw);
      relu_grad(t);
      for (int k = 0; k < K; ++k) {
        vf sd = vf{}, sda = vf{};
        const vf mu = splat(g.mu1[k]), rs = splat(g.rs1[k]);
        for (int p = 0; p < P; p += V) {
          size_t i = (size_t)k * P + p;
          vf du = load(&t.d2[i]);
          sd += du;
          sda += du * (load(&t.a[i]) - mu) * rs;
        }
        acc[k] += hsum(sd); acc[K + k] += hsum(sda);
      }
    }
  }
  const std::vector<double> t1 = s1.total();
  std::vector<float> k1, cb1, cg1;
  bn_grad_coefficients(t1, g1, g.rs1, K, batch, M, &k1, &cb1, &cg1);

  // Pass 3: da, dW1 = sum da x^T, dx = dy s + W1^T da.
  float* dx = out[0].data<float>();
  std::vector<std::vector<float>> dw1(nt, std::vector<float>((size_t)K * C, 0.0f));
#pragma omp parallel num_threads(nt)
  {
    Scratch t; t.size(g);
    float* dw = dw1[omp_get_thread_num()].data();
#pragma omp for schedule(static)
    for (int n = 0; n < N; ++n) {
      const size_t off = (size_t)n * C * g.HW;
      recompute(t, off);
      dz_dh(t);
      relu_grad(t);
      float* da = t.d2.data();  // du becomes da in place
      for (int k = 0; k < K; ++k) {
        const vf mu = splat(g.mu1[k]), rs = splat(g.rs1[k]);
        const vf kk = splat(k1[k]), bk = splat(cb1[k]), gk = splat(cg1[k]);
        for (int p = 0; p < P; p += V) {
          size_t i = (size_t)k * P + p;
          vf ah = (load(&t.a[i]) - mu) * rs;
          store(&da[i], kk * (load(&da[i]) - bk - ah * gk) * g.mask(p));
        }
      }
      outer(da, P, K, t.xp.ptr, P, C, P, dw);
      float* dst = g.direct ? dx + off : t.out.data();
      const float* dyp = t.dyp.ptr;
      const float* s = t.s.data();
      gemm(g.w1t.data(), C, K, da, P, P, [&](int o, int p, vf acc) {
        size_t i = (size_t)o * P + p;
        store(dst + i, load(dyp + i) * load(s + i) + acc);
      });
      if (!g.direct) write_planes(t.out, C, g, dx + off);
    }
  }

  auto reduce = [&](const std::vector<std::vector<float>>& parts, float* dst) {
    std::fill(dst, dst + parts[0].size(), 0.0f);
    for (const auto& part : parts)
      for (size_t i = 0; i < part.size(); ++i) dst[i] += part[i];
  };
  reduce(dw1, out[2].data<float>());
  reduce(dw2, out[7].data<float>());
  for (int k = 0; k < K; ++k) {
    out[3].data<float>()[k] = (float)t1[K + k];
    out[4].data<float>()[k] = (float)t1[k];
  }
  for (int c = 0; c < C; ++c) {
    out[8].data<float>()[c] = (float)t2[C + c];
    out[9].data<float>()[c] = (float)t2[c];
  }
  for (int i : {1, 5, 6, 10, 11}) {  // the mode probe and running statistics: no gradient
    if (out[i].data_ptr != nullptr)
      std::fill(out[i].data<float>(), out[i].data<float>() + out[i].size(), 0.0f);
  }
  if (batch) {
    // MXNet's BatchNorm moves its running statistics in backward: do the same.
    auto update = [](float* run, const float* batch_val, int n, float mom) {
      for (int c = 0; c < n; ++c) run[c] = run[c] * mom + batch_val[c] * (1.0f - mom);
    };
    update(in[5].data<float>(), mean1, K, at.mom1);
    update(in[6].data<float>(), var1, K, at.mom1);
    update(in[10].data<float>(), mean2, C, at.mom2);
    update(in[11].data<float>(), var2, C, at.mom2);
  }
  return MX_SUCCESS;
}

MXReturnValue parse_attrs(const std::unordered_map<std::string, std::string>& attrs,
                          int* num_in, int* num_out) {
  *num_in = 12;
  *num_out = 2;
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
  (*out_types)[0] = kFloat32;
  (*out_types)[1] = kFloat32;
  return MX_SUCCESS;
}

MXReturnValue infer_shape(const std::unordered_map<std::string, std::string>& attrs,
                          std::vector<std::vector<unsigned int>>* in_shapes,
                          std::vector<std::vector<unsigned int>>* out_shapes) {
  const auto& x = (*in_shapes)[0];
  const auto& w1 = (*in_shapes)[2];
  if (x.size() < 3 || w1.size() < 2 || w1[1] != x[1]) {
    MX_ERROR_MSG << "atac_gate: x must be N,C,spatial... and w1 K,C,1,1";
    return MX_FAIL;
  }
  (*out_shapes)[0] = x;
  (*out_shapes)[1] = {2 * w1[0] + 2 * x[1]};
  return MX_SUCCESS;
}

MXReturnValue mutate_inputs(const std::unordered_map<std::string, std::string>& attrs,
                            std::vector<int>* indices) {
  // running statistics (kept in sync with the backward that moves them)
  *indices = {5, 6, 10, 11};
  return MX_SUCCESS;
}

}  // namespace

REGISTER_OP(atac_gate)
    .setForward(forward, "cpu")
    .setBackward(backward, "cpu")
    .setParseAttrs(parse_attrs)
    .setInferType(infer_type)
    .setInferShape(infer_shape)
    .setMutateInputs(mutate_inputs);

MXReturnValue initialize(int version) {
  return version >= 10700 ? MX_SUCCESS : MX_FAIL;
}

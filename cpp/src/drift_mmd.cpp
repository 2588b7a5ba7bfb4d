// Unbiased MMD^2 for many labellings in one tiled pass (derivation in curata/drift_mmd.hpp).
//
// Work is split into upper-triangle tile rows: tile row I (tiles K_IJ, J >= I) is owned by one
// thread and its partial sums are kept per row, then added in row order, so the result does not
// depend on the thread count. Per tile: a cache-blocked dot-product kernel gives G = Z_I Z_J',
// the kernel tile is exp(-(|z_i|^2 + |z_j|^2 - 2 G) / (2 sigma^2)), and the same register-blocked
// kernel multiplies it by the label block A_J.
#include "curata/drift_mmd.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "curata/fast_math.hpp"
#include "curata/parallel.hpp"
#include "curata/simd.hpp"

namespace curata {
namespace drift {
namespace {

constexpr int64_t kTile = 128;  // rows/columns of a kernel tile (multiple of 8)
constexpr int64_t kDepth = 256;  // dot-product depth per pass (cache blocking over features)
constexpr int kRows = 8, kCols = 16;  // register block of the multiply kernel (kCols multiple of 8)
constexpr int64_t kPanel = 16;  // column panel width of packed operands (multiple of kCols)
static_assert(kTile % kPanel == 0 && kPanel % kRows == 0 && kPanel % kCols == 0, "panels hold whole blocks");


// C[r][c] (+)= sum_k L(r, k) * R(c)[k * ldr + c % kPanel] for r < rows (multiple of kRows), c < cols
// (multiple of kCols), where R(c) = R + (c / kPanel) * rblock is the column panel holding c (a
// row-major operand is one panel: rblock = kPanel) and L(r, k) = L[(r / kPanel) * lblock + (r %
// kPanel) * lrs + k * lks]: a row-major L has lrs = ldl, lks = 1, lblock = kPanel * ldl; L packed in
// panels like R (the pooled rows, stored once that way) has lrs = 1, lks = kPanel, lblock = d kPanel. The kRows x kCols register block
// (8 x 16: 16 zmm accumulators on AVX-512, measured fastest on the 2-core EPYC among 4x8, 8x8,
// 4x16, 8x16) is written with GCC vector types so every clone keeps it in registers as far as it
// can; multiply and add stay separate operations, and the summation order over k does not
// depend on the block shape (every clone gives the same bits).
#if defined(__GNUC__) || defined(__clang__)
typedef double v8d __attribute__((vector_size(64), aligned(8)));
CURATA_ALWAYS_INLINE v8d load8(const double* p) { return simd::load_unaligned<v8d>(p); }
CURATA_SIMD_CLONES
void block_multiply(int64_t rows, int64_t cols, int64_t depth, const double* L, int64_t lrs, int64_t lks,
                    int64_t lblock, const double* R, int64_t ldr, int64_t rblock, double* C, int64_t ldc,
                    bool accumulate) {
  constexpr int V = kCols / 8;  // vectors of 8 per row of the register block
  for (int64_t r0 = 0; r0 < rows; r0 += kRows) {
    const double* l0 = L + (r0 / kPanel) * lblock + (r0 % kPanel) * lrs;  // kRows divides kPanel
    for (int64_t c0 = 0; c0 < cols; c0 += kCols) {
      const double* rp = R + (c0 / kPanel) * rblock + c0 % kPanel;
      v8d acc[kRows][V];
      for (int r = 0; r < kRows; ++r)
        for (int v = 0; v < V; ++v) acc[r][v] = v8d{};
      for (int64_t k = 0; k < depth; ++k) {
        v8d rk[V];
        for (int v = 0; v < V; ++v) rk[v] = load8(rp + k * ldr + 8 * v);
        for (int r = 0; r < kRows; ++r) {
          const double lv = l0[r * lrs + k * lks];
          for (int v = 0; v < V; ++v) acc[r][v] += lv * rk[v];
        }
      }
      for (int r = 0; r < kRows; ++r)
        for (int v = 0; v < V; ++v) {
          double* out = C + (r0 + r) * ldc + c0 + 8 * v;
          if (accumulate) acc[r][v] += load8(out);
          std::memcpy(out, &acc[r][v], sizeof(v8d));
        }
    }
  }
}
#else
void block_multiply(int64_t rows, int64_t cols, int64_t depth, const double* L, int64_t lrs, int64_t lks,
                    int64_t lblock, const double* R, int64_t ldr, int64_t rblock, double* C, int64_t ldc,
                    bool accumulate) {
  for (int64_t r0 = 0; r0 < rows; r0 += kRows)
    for (int64_t c0 = 0; c0 < cols; c0 += kCols) {
      const double* l0 = L + (r0 / kPanel) * lblock + (r0 % kPanel) * lrs;
      const double* rp = R + (c0 / kPanel) * rblock + c0 % kPanel;
      double acc[kRows][kCols] = {};
      for (int64_t k = 0; k < depth; ++k)
        for (int r = 0; r < kRows; ++r)
          for (int c = 0; c < kCols; ++c) acc[r][c] += l0[r * lrs + k * lks] * rp[k * ldr + c];
      for (int r = 0; r < kRows; ++r)
        for (int c = 0; c < kCols; ++c) {
          double* out = C + (r0 + r) * ldc + c0 + c;
          *out = accumulate ? *out + acc[r][c] : acc[r][c];
        }
    }
}
#endif

// K[i][j] = exp(-max(0, ni[i] + nj[j] - 2 G[i][j]) * inv), 0 outside the valid rows/columns, and
// the exact 1 on the diagonal of a diagonal tile.
CURATA_SIMD_CLONES
void kernel_tile(double* G, const double* ni, const double* nj, int64_t rows_valid, int64_t cols_valid, bool diagonal,
                 double inv) {
  for (int64_t i = 0; i < kTile; ++i) {
    double* g = G + i * kTile;
    const double a = ni[i];
    for (int64_t j = 0; j < kTile; ++j) {
      double d2 = a + nj[j] - 2.0 * g[j];
      d2 = d2 > 0.0 ? d2 : 0.0;
      d2 = (diagonal && i == j) ? 0.0 : d2;
      const double k = fast_math::exp_nonpositive(-d2 * inv);
      g[j] = (i < rows_valid && j < cols_valid) ? k : 0.0;
    }
  }
}

}  // namespace

double exp_nonpositive(double x) { return fast_math::exp_nonpositive(x); }

template <class T>
std::vector<double> mmd_permutation_statistics(const T* ref, int64_t n, const T* cur, int64_t m, int64_t d,
                                               const uint8_t* labels, int64_t B, double sigma) {
  if (n < 2 || m < 2)
    throw std::invalid_argument("mmd needs at least 2 rows in ref and in cur, got " + std::to_string(n) + " and " +
                                std::to_string(m));
  // 1 / (2 sigma^2) must be finite too: an infinite scale makes exp(-0 * inf) NaN.
  if (!(sigma > 0.0) || !std::isfinite(sigma) || !std::isfinite(1.0 / (2.0 * sigma * sigma)))
    throw std::invalid_argument("bandwidth must be a finite number > 0 with 1 / (2 sigma^2) finite, got " +
                                std::to_string(sigma));
  if (B < 1 || d < 1) throw std::invalid_argument("mmd needs at least one labelling and one column");
  const int64_t N = n + m;
  const int64_t nb = (N + kTile - 1) / kTile, Np = nb * kTile;
  const int64_t Bp = (B + kCols - 1) / kCols * kCols;

  // Pooled rows in float64 (zero padding), stored once in kPanel-row panels, feature-major
  // (Z[(i / P) * d * P + k * P + i % P]): the layout the multiply kernel wants for its right operand,
  // which it also reads as its left one; and their squared norms. The rows are centred on the
  // pooled column means first: distances do not change, but |z_i|^2 + |z_j|^2 - 2 z_i.z_j cancels
  // catastrophically when the data sit far from the origin (an offset of 1e6 on unit-spread data
  // loses ~6 digits of every distance, 1e8 all of them).
  std::vector<double> centre(static_cast<size_t>(d), 0.0);
  for (int64_t i = 0; i < N; ++i) {
    const T* src = i < n ? ref + i * d : cur + (i - n) * d;
    for (int64_t k = 0; k < d; ++k) centre[static_cast<size_t>(k)] += static_cast<double>(src[k]);
  }
  for (double& c : centre) c /= static_cast<double>(N);
  std::vector<double> Z(static_cast<size_t>(Np * d), 0.0), norms(static_cast<size_t>(Np), 0.0);
  for (int64_t i = 0; i < N; ++i) {
    const T* src = i < n ? ref + i * d : cur + (i - n) * d;
    double* dst = Z.data() + (i / kPanel) * d * kPanel + i % kPanel;
    double s = 0.0;
    for (int64_t k = 0; k < d; ++k) {
      const double v = static_cast<double>(src[k]) - centre[static_cast<size_t>(k)];
      dst[k * kPanel] = v;
      s += v * v;
    }
    norms[static_cast<size_t>(i)] = s;
  }
  // Labels as float64 weights, (Np, Bp), zero padding.
  std::vector<double> A(static_cast<size_t>(Np * Bp), 0.0);
  std::vector<int64_t> ones(static_cast<size_t>(B), 0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t p = 0; p < B; ++p) {
      const uint8_t v = labels[i * B + p];
      A[static_cast<size_t>(i * Bp + p)] = v ? 1.0 : 0.0;
      ones[static_cast<size_t>(p)] += v ? 1 : 0;
    }
  for (int64_t p = 0; p < B; ++p)
    if (ones[static_cast<size_t>(p)] != n)
      throw std::invalid_argument("labels column " + std::to_string(p) + " must hold " + std::to_string(n) +
                                  " ones, got " + std::to_string(ones[static_cast<size_t>(p)]));

  const double inv = 1.0 / (2.0 * sigma * sigma);
  std::vector<double> quad(static_cast<size_t>(nb * Bp), 0.0), lin(static_cast<size_t>(nb * Bp), 0.0),
      total(static_cast<size_t>(nb), 0.0);
  const int64_t tiles = nb * (nb + 1) / 2;
  const int threads = std::min<int>(threads_for(tiles * kTile * kTile * (d + B), int64_t(1) << 22),
                                    static_cast<int>(nb));
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    std::vector<double> G(static_cast<size_t>(kTile * kTile)), M(static_cast<size_t>(kTile * Bp)),
        rs(static_cast<size_t>(kTile));
#pragma omp for schedule(dynamic, 1)
    for (int64_t I = 0; I < nb; ++I) {
      double* q = quad.data() + I * Bp;
      double* l = lin.data() + I * Bp;
      double t_sum = 0.0;
      const double* ZI = Z.data() + I * kTile * d;
      const double* AI = A.data() + I * kTile * Bp;
      for (int64_t J = I; J < nb; ++J) {
        const double* ZJ = Z.data() + J * kTile * d;
        for (int64_t k0 = 0; k0 < d; k0 += kDepth)
          block_multiply(kTile, kTile, std::min(kDepth, d - k0), ZI + k0 * kPanel, 1, kPanel, d * kPanel,
                         ZJ + k0 * kPanel, kPanel, d * kPanel, G.data(), kTile, k0 > 0);
        const bool diag = I == J;
        kernel_tile(G.data(), norms.data() + I * kTile, norms.data() + J * kTile, std::min(kTile, N - I * kTile),
                    std::min(kTile, N - J * kTile), diag, inv);
        const double* AJ = A.data() + J * kTile * Bp;
        block_multiply(kTile, Bp, kTile, G.data(), kTile, 1, kPanel * kTile, AJ, Bp, kPanel, M.data(), Bp, false);
        double tile_sum = 0.0;
        for (int64_t i = 0; i < kTile; ++i) {
          double s = 0.0;
          const double* g = G.data() + i * kTile;
          for (int64_t j = 0; j < kTile; ++j) s += g[j];
          rs[static_cast<size_t>(i)] = s;
          tile_sum += s;
        }
        const double w = diag ? 1.0 : 2.0;
        t_sum += w * tile_sum;
        for (int64_t i = 0; i < kTile; ++i) {
          const double* a = AI + i * Bp;
          const double* mi = M.data() + i * Bp;
          const double r = rs[static_cast<size_t>(i)];
          for (int64_t p = 0; p < Bp; ++p) {
            q[p] += w * (a[p] * mi[p]);
            l[p] += a[p] * r + (diag ? 0.0 : mi[p]);
          }
        }
      }
      total[static_cast<size_t>(I)] = t_sum;
    }
  }

  double T_all = 0.0;
  std::vector<double> qs(static_cast<size_t>(B), 0.0), ls(static_cast<size_t>(B), 0.0);
  for (int64_t I = 0; I < nb; ++I) {
    T_all += total[static_cast<size_t>(I)];
    for (int64_t p = 0; p < B; ++p) {
      qs[static_cast<size_t>(p)] += quad[static_cast<size_t>(I * Bp + p)];
      ls[static_cast<size_t>(p)] += lin[static_cast<size_t>(I * Bp + p)];
    }
  }
  const double dn = static_cast<double>(n), dm = static_cast<double>(m);
  std::vector<double> out(static_cast<size_t>(B));
  for (int64_t p = 0; p < B; ++p) {
    const double sxx = qs[static_cast<size_t>(p)];
    const double sxy = ls[static_cast<size_t>(p)] - sxx;
    const double syy = T_all - 2.0 * ls[static_cast<size_t>(p)] + sxx;
    out[static_cast<size_t>(p)] = (sxx - dn) / (dn * (dn - 1.0)) + (syy - dm) / (dm * (dm - 1.0)) - 2.0 * sxy / (dn * dm);
  }
  return out;
}

template std::vector<double> mmd_permutation_statistics<float>(const float*, int64_t, const float*, int64_t, int64_t,
                                                               const uint8_t*, int64_t, double);
template std::vector<double> mmd_permutation_statistics<double>(const double*, int64_t, const double*, int64_t,
                                                                int64_t, const uint8_t*, int64_t, double);

}  // namespace drift
}  // namespace curata

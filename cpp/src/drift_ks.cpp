// Kolmogorov-Smirnov: two-sample statistic per column, exact and asymptotic p-values.
//
// Method choice, statistic rounding and fallbacks follow scipy.stats.ks_2samp:
//   * auto: exact when max(n1, n2) <= 10000, else asymptotic;
//   * exact: D is rounded to a multiple of 1/lcm(n1, n2); two-sided P(D >= d) from Hodges' lattice
//     paths (closed alternating sum when n1 == n2, the Viehmann (2021) recursion on the
//     probability scale otherwise); one-sided from the path count of Hodges (1958). A requested
//     exact method whose lcm is too large, or an exact computation that overflows, falls back to
//     the asymptotic one;
//   * asymptotic two-sided: the one-sample distribution kstwo at n = round(n1 n2 / (n1 + n2));
//     one-sided: Hodges' approximation exp(-2z^2 - 2z(m + 2n)/sqrt(mn(m + n))/3).
// kstwo_sf implements the algorithm selection of Simard & L'Ecuyer (2011): Ruben-Gambino closed
// forms at the ends, Durbin's matrix (Marsaglia-Tsang-Wang), Pomeranz's recursion, the
// Pelz-Good expansion and 2 * Smirnov's one-sided tail.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <tuple>
#include <utility>
#include <vector>

#include "curata/drift.hpp"
#include "curata/drift_math.hpp"
#include "curata/parallel.hpp"
#include "drift_internal.hpp"

namespace curata {
namespace drift {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int64_t kMinParallelWork = int64_t(1) << 17;  // ~4 ms: below, waking a thread costs more
constexpr double kPi = 3.14159265358979323846;

double clip01(double p) { return std::isnan(p) ? p : std::min(1.0, std::max(0.0, p)); }

// ------------------------------------------------------------------ Smirnov one-sided tail
// P(D+_n >= x) = x * sum_{v=0}^{floor(n(1-x))} C(n, v) (1 - x - v/n)^(n-v) (x + v/n)^(v-1)
// (Birnbaum & Tingey 1951). The terms are written without large cancelling logarithms: with
// a = nx/(n-v) and c = nx/v, Stirling's formula with its exact remainder (Loader 2000) gives
//   log term = s(n) - s(v) - s(n-v) - log(2 pi)/2 - 3/2 log v - 1/2 log(n-v) + 3/2 log n
//              - c - (n-v) g(-a) - (v-1) g(c),   g(t) = t - log1p(t) >= 0,
// where s(k) = log k! - (k + 1/2) log k + k - log(2 pi)/2. Every piece is O(log n + n x^2), so
// double precision keeps each term to ~1e-14 relative (the direct form loses ~n ulps).
struct StirlingTable {
  double value[32];
  StirlingTable() {
    const long double half_log_2pi = 0.918938533204672741780329736405617640L;
    value[0] = 0;
    for (int k = 1; k < 32; ++k) {
      const long double kk = k;
      value[k] = static_cast<double>(std::lgamma(kk + 1) - (kk + 0.5L) * std::log(kk) + kk - half_log_2pi);
    }
  }
};

double stirling_remainder(int64_t k) {
  static const StirlingTable table;
  if (k < 32) return table.value[k];
  const double r = 1.0 / static_cast<double>(k), r2 = r * r;
  return (1.0 / 12 - (1.0 / 360 - (1.0 / 1260 - (1.0 / 1680 - (1.0 / 1188) * r2) * r2) * r2) * r2) * r;
}

// t - log1p(t) for t > -1. Near 0, with r = t / (2 + t): log1p(t) = 2 atanh(r), so
// t - log1p(t) = r t - 2 (r^3/3 + r^5/5 + ...) without cancellation. For |t| >= 0.1 the direct
// difference loses at most ~20 ulps of |t|, an absolute error of eps * |t| that stays ~eps * n x
// once multiplied by the (n - v) or (v - 1) in front of it.
double log1p_gap(double t) {
  if (std::fabs(t) < 0.1) {
    static constexpr double inv_odd[] = {1.0 / 3,  1.0 / 5,  1.0 / 7,  1.0 / 9,  1.0 / 11, 1.0 / 13,
                                         1.0 / 15, 1.0 / 17, 1.0 / 19, 1.0 / 21, 1.0 / 23, 1.0 / 25};
    const double r = t / (2 + t), r2 = r * r;  // |r| < 0.053, r2 < 0.0028: 12 terms reach 1e-31
    double series = inv_odd[11];
    for (int k = 10; k >= 0; --k) series = series * r2 + inv_odd[k];
    return r * t - 2 * (r * r2) * series;
  }
  return t - std::log1p(t);
}

double smirnov_lower_sum(int64_t n, double x, double nx_hi, double nx_lo, int64_t last_v) {
  const double dn = static_cast<double>(n);
  // v = 0: (1 - x)^n / x
  // Up to n terms: accumulate in extended precision so the sum adds no error of its own.
  long double sum = std::exp(static_cast<long double>(n) * std::log1p(-static_cast<long double>(x))) / x;
  const long double eps = std::numeric_limits<double>::epsilon();
  const double half_log_2pi = 0.91893853320467274178;
  const double base = stirling_remainder(n) - half_log_2pi + 1.5 * std::log(dn);
  for (int64_t v = 1; v <= last_v; ++v) {
    const double nv = static_cast<double>(n - v), dv = static_cast<double>(v);
    if (!((nv - nx_hi) - nx_lo > 0)) break;
    const double a = nx_hi / nv + nx_lo / nv, c = nx_hi / dv + nx_lo / dv;
    const double log_term = base - stirling_remainder(v) - stirling_remainder(n - v) - 1.5 * std::log(dv) -
                            0.5 * std::log(nv) - c - nv * log1p_gap(-a) - (dv - 1) * log1p_gap(c);
    const double term = std::exp(log_term);
    sum += term;
    if (term != 0) {
      // Remaining terms are decreasing here; stop once they cannot move the double result.
      if (4.0L * static_cast<long double>(last_v + 1 - v) * term < eps * sum && v != last_v) break;
    } else if (v > n / 2) {
      break;
    }
  }
  return static_cast<double>(x * sum);
}

}  // namespace

double smirnov_sf(int64_t n, double x) {
  if (!(n > 0 && x >= 0.0 && x <= 1.0)) return kNaN;
  if (n == 1) return 1.0 - x;
  if (x == 0.0) return 1.0;
  if (x == 1.0) return 0.0;
  const double dn = static_cast<double>(n);
  // floor(n x) and its fractional part, exactly: n x = hi + lo.
  const double hi = dn * x, lo = std::fma(dn, x, -hi);
  double fl = std::floor(hi);
  double alpha = (hi - fl) + lo;
  if (alpha < 0) {
    fl -= 1;
    alpha += 1;
  }
  if (alpha >= 1) {
    fl += 1;
    alpha = 0;
  }
  const int64_t nxfl = static_cast<int64_t>(fl);
  int64_t last_v = n - nxfl - (alpha == 0 ? 0 : 1);
  if (alpha == 0) last_v -= 1;
  if (nxfl == 0 || (nxfl == 1 && alpha == 0)) {
    const double t = static_cast<double>(std::pow(1.0L + x, static_cast<long double>(n - 1)));
    return clip01(1.0 - x * t);
  }
  if (-2 * n * x * x < -7.451332191019412076235e2) return 0.0;  // Cephes MINLOG: the tail underflows
  if (nxfl >= n - 1) return clip01(static_cast<double>(std::pow(1.0L - x, static_cast<long double>(n))));
  if (n > 1000000) {
    // Too many terms: p ~ exp(-(6nx + 1)^2 / 18n).
    const double logp = -std::pow(6.0 * dn * x + 1, 2) / 18.0 / dn;
    return clip01(logp < -0.69314718055994530942 ? std::exp(logp) : 1.0 - (-std::expm1(logp)));
  }
  return clip01(smirnov_lower_sum(n, x, hi, lo, last_v));
}

namespace {

// ------------------------------------------------------------------ two-sided one-sample KS
// log(n! / n^n) by Stirling's series with the n log n part removed.
double log_nfactorial_div_n_pow_n(int64_t n) {
  // B_{2j} / (2j (2j - 1)) for j = 8, ..., 1 (Horner order).
  static const double coeffs[] = {-3617.0 / 122400.0, 1.0 / 156.0, -691.0 / 360360.0, 1.0 / 1188.0,
                                  -1.0 / 1680.0,      1.0 / 1260.0, -1.0 / 360.0,      1.0 / 12.0};
  const double dn = static_cast<double>(n);
  const double rn = 1.0 / dn, x = rn / dn;
  double poly = 0.0;
  for (double c : coeffs) poly = poly * x + c;
  return std::log(dn) / 2 - dn + std::log(2 * kPi) / 2 + rn * poly;
}

// Durbin's matrix method (Marsaglia, Tsang & Wang 2003): P(D_n < d) = n!/n^n (H^n)_{kk}.
double kolmogorov_cdf_durbin(int64_t n, double d) {
  if (d >= 1.0) return 1.0;
  const double nd = static_cast<double>(n) * d;
  if (nd <= 0.5) return 0.0;
  const int64_t k = static_cast<int64_t>(std::ceil(nd));
  const double h = static_cast<double>(k) - nd;
  const int64_t m = 2 * k - 1;
  const size_t mm = static_cast<size_t>(m);
  std::vector<double> H(mm * mm, 0.0), v(mm), w(mm);
  double fac = 1.0;
  for (int64_t j = 1; j <= m; ++j) {
    w[j - 1] = fac;  // 1 / (j - 1)!
    fac /= static_cast<double>(j);
    v[j - 1] = (1.0 - std::pow(h, static_cast<double>(j))) * fac;  // (1 - h^j) / j!
  }
  const double tt = std::pow(std::max(2 * h - 1.0, 0.0), static_cast<double>(m)) - 2 * std::pow(h, static_cast<double>(m));
  v[mm - 1] = (1.0 + tt) * fac;
  for (int64_t i = 1; i < m; ++i)
    for (int64_t r = i - 1; r < m; ++r) H[r * m + i] = w[r - i + 1];
  for (int64_t r = 0; r < m; ++r) H[r * m] = v[r];
  for (int64_t c = 0; c < m; ++c) H[(m - 1) * m + c] = v[m - 1 - c];

  auto matmul = [m, mm](const std::vector<double>& a, const std::vector<double>& b) {
    std::vector<double> c(mm * mm, 0.0);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t l = 0; l < m; ++l) {
        const double ail = a[i * m + l];
        if (ail == 0.0) continue;
        const double* brow = b.data() + l * m;
        double* crow = c.data() + i * m;
        for (int64_t j = 0; j < m; ++j) crow[j] += ail * brow[j];
      }
    return c;
  };
  std::vector<double> P(mm * mm, 0.0);
  for (int64_t i = 0; i < m; ++i) P[i * m + i] = 1.0;
  const double big = std::ldexp(1.0, 128);
  int64_t expnt = 0, h_expnt = 0;
  for (int64_t e = n; e > 0; e /= 2) {
    if (e % 2) {
      P = matmul(P, H);
      expnt += h_expnt;
    }
    H = matmul(H, H);
    h_expnt *= 2;
    if (std::fabs(H[(k - 1) * m + (k - 1)]) > big) {
      for (double& x : H) x /= big;
      h_expnt += 128;
    }
  }
  long double p = P[(k - 1) * m + (k - 1)];
  const long double small = std::ldexp(1.0L, -128), big_l = std::ldexp(1.0L, 128);
  for (int64_t i = 1; i <= n; ++i) {
    p = static_cast<long double>(i) * p / static_cast<long double>(n);
    if (std::fabs(p) < small) {
      p *= big_l;
      expnt -= 128;
    }
  }
  if (expnt != 0) p = std::ldexp(p, static_cast<int>(expnt));
  return clip01(static_cast<double>(p));
}

// Pomeranz (1974) recursion for P(D_n <= d); used for n <= 140.
void pomeranz_bounds(int64_t i, int64_t n, int64_t ll, int64_t ceilf, int64_t roundf, int64_t* j1, int64_t* j2) {
  int64_t a, b;
  if (i == 0) {
    a = -ll - ceilf - 1;
    b = ll + ceilf - 1;
  } else {
    const int64_t half = (i + 1) / 2, odd_i = ((i + 1) % 2) == 0;
    if (odd_i) {
      if (half == n + 1) {
        a = n - ll - ceilf - 1;
        b = n + ll + ceilf - 1;
      } else {
        a = half - 1 - ll - roundf - 1;
        b = half + ll - 1 + ceilf - 1;
      }
    } else {
      a = half - 1 - ll - 1;
      b = half + ll + roundf - 1;
    }
  }
  *j1 = std::max<int64_t>(a + 2, 0);
  *j2 = std::min<int64_t>(b, n);
}

double kolmogorov_cdf_pomeranz(int64_t n, double x) {
  // Carried in long double: the result feeds 1 - cdf where cdf is close to 1, and the double
  // recursion loses ~5e-12 relative there (checked against a 50-digit evaluation).
  using ld = long double;
  const double dn = static_cast<double>(n);
  const double t = dn * x;
  const int64_t ll = static_cast<int64_t>(std::floor(t));
  const double f = t - static_cast<double>(ll);
  const double g = std::min(f, 1.0 - f);
  const int64_t ceilf = f > 0 ? 1 : 0, roundf = f > 0.5 ? 1 : 0;
  const int64_t npwrs = 2 * (ll + 1);
  std::vector<ld> gp(npwrs), g2p(npwrs), g12p(npwrs);  // (g/n)^k/k!, (2g/n)^k/k!, ((1-2g)/n)^k/k!
  gp[0] = g2p[0] = g12p[0] = 1.0L;
  const ld a1 = static_cast<ld>(g) / dn, a2 = 2 * static_cast<ld>(g) / dn, a3 = (1 - 2 * static_cast<ld>(g)) / dn;
  for (int64_t k = 1; k < npwrs; ++k) {
    const ld dk = static_cast<ld>(k);
    gp[k] = gp[k - 1] * a1 / dk;
    g2p[k] = g2p[k - 1] * a2 / dk;
    g12p[k] = g12p[k - 1] * a3 / dk;
  }
  std::vector<ld> V0(npwrs, 0.0L), V1(npwrs, 0.0L);
  V1[0] = 1.0L;
  int64_t V0s = 0, V1s = 0, expnt = 0;
  const ld tiny = std::ldexp(1.0L, -128), big = std::ldexp(1.0L, 128);
  int64_t j1, j2;
  pomeranz_bounds(0, n, ll, ceilf, roundf, &j1, &j2);
  for (int64_t i = 1; i < 2 * n + 2; ++i) {
    const int64_t k1 = j1;
    std::swap(V0, V1);
    std::swap(V0s, V1s);
    std::fill(V1.begin(), V1.end(), 0.0L);
    pomeranz_bounds(i, n, ll, ceilf, roundf, &j1, &j2);
    const std::vector<ld>& pw = (i == 1 || i == 2 * n + 1) ? gp : ((i % 2) ? g2p : g12p);
    const int64_t len = j2 - k1 + 1;
    if (len > 0) {
      const ld* a = V0.data() + (k1 - V0s);
      const int64_t start = j1 - k1, count = j2 - j1 + 1;
      ld vmax = 0.0L;
      for (int64_t c = 0; c < count; ++c) {
        const int64_t idx = start + c;  // index into the full convolution of a and pw
        ld s = 0.0L;
        for (int64_t q = std::max<int64_t>(0, idx - (len - 1)); q <= std::min(idx, len - 1); ++q) s += a[q] * pw[idx - q];
        V1[c] = s;
        vmax = std::max(vmax, s);
      }
      if (vmax > 0 && vmax < tiny) {
        for (ld& val : V1) val *= big;
        expnt -= 128;
      }
      V1s = V0s + j1 - k1;
    }
  }
  ld ans = V1[n - V1s];
  for (int64_t k = 1; k <= n; ++k) {
    if (std::fabs(ans) > big) {
      ans *= tiny;
      expnt += 128;
    }
    ans *= static_cast<ld>(k);
  }
  if (expnt != 0) ans = std::ldexp(ans, static_cast<int>(expnt));
  return clip01(static_cast<double>(ans));
}

// Pelz & Good (1976) expansion of P(D_n <= x) in powers of n^(-1/2), written with Jacobi theta
// transforms that converge fast for small z = x sqrt(n).
double kolmogorov_cdf_pelz_good(int64_t n, double x) {
  if (x <= 0.0) return 0.0;
  if (x >= 1.0) return 1.0;
  const double pi2 = std::pow(kPi, 2), pi4 = std::pow(kPi, 4), pi6 = std::pow(kPi, 6);
  const double sqrt2pi = std::sqrt(2 * kPi), sqrt3 = std::sqrt(3.0);
  const double dn = static_cast<double>(n);
  const double z = std::sqrt(dn) * x;
  const double z2 = std::pow(z, 2), z3 = std::pow(z, 3), z4 = std::pow(z, 4), z6 = std::pow(z, 6);
  const double qlog = -pi2 / 8 / z2;
  if (qlog < -708) return 0.0;
  double q = std::exp(qlog);
  const double k1a = -z2, k1b = pi2 / 4;
  const double k2a = 6 * z6 + 2 * z4, k2b = (2 * z4 - 5 * z2) * pi2 / 4, k2c = pi4 * (1 - 2 * z2) / 16;
  const double k3d = pi6 * (5 - 30 * z2) / 64, k3c = pi4 * (-60 * z2 + 212 * z4) / 16;
  const double k3b = pi2 * (135 * z4 - 96 * z6) / 4, k3a = -30 * z6 - 90 * std::pow(z, 8);
  double K[4] = {0, 0, 0, 0};
  const int64_t maxk = static_cast<int64_t>(std::ceil(16 * z / kPi));
  for (int64_t k = maxk; k > 0; --k) {
    const double m = static_cast<double>(2 * k - 1);
    const double m2 = m * m, m4 = m2 * m2, m6 = m4 * m2;  // exact integers
    const double qpower = std::pow(q, static_cast<double>(8 * k));
    const double c[4] = {1.0, k1a + k1b * m2, k2a + k2b * m2 + k2c * m4, k3a + k3b * m2 + k3c * m4 + k3d * m6};
    for (int r = 0; r < 4; ++r) K[r] = K[r] * qpower + c[r];
  }
  const double div[4] = {z, 6 * z4, 72 * std::pow(z, 7), 6480 * std::pow(z, 10)};
  for (int r = 0; r < 4; ++r) K[r] = K[r] * q * sqrt2pi / div[r];
  q = std::exp(-pi2 / 2 / z2);
  double s2 = 0.0, s3 = 0.0;
  const double sqrt3z = sqrt3 * z;
  for (int64_t k = maxk; k > 0; --k) {
    const double kk = static_cast<double>(k * k);
    const double qp = std::pow(q, kk);
    const double kspi = kPi * static_cast<double>(k);
    s2 += kk * qp;
    s3 += (sqrt3z + kspi) * (sqrt3z - kspi) * kk * qp;
  }
  K[2] += s2 * (pi2 * sqrt2pi / (-36 * z3));
  K[3] += s3 * (pi2 * sqrt2pi / (216 * z6));
  double total = 0.0;
  for (int r = 0; r < 4; ++r) total += K[r] / std::pow(dn, r / 2.0);
  return total;
}

}  // namespace

double kstwo_sf(int64_t n, double x) {
  if (std::isnan(x) || n <= 0) return kNaN;
  if (x >= 1.0) return 0.0;
  if (x <= 0.0) return 1.0;
  const double dn = static_cast<double>(n);
  const double t = dn * x;
  if (t <= 1.0) {  // Ruben & Gambino: 1/(2n) <= x <= 1/n
    if (t <= 0.5) return 1.0;
    double prob;
    if (n <= 140) {
      prob = 1.0;
      for (int64_t i = 1; i <= n; ++i) prob *= static_cast<double>(i) * (1.0 / dn) * (2 * t - 1);
    } else {
      prob = std::exp(log_nfactorial_div_n_pow_n(n) + dn * std::log(2 * t - 1));
    }
    return clip01(1.0 - prob);
  }
  if (t >= dn - 1) return clip01(2 * std::pow(1.0 - x, dn));  // Ruben & Gambino
  if (x >= 0.5) return clip01(2 * smirnov_sf(n, x));
  const double nxsq = t * x;
  if (n <= 140) {
    if (nxsq <= 0.754693) return clip01(1.0 - kolmogorov_cdf_durbin(n, x));
    if (nxsq <= 4) return clip01(1.0 - kolmogorov_cdf_pomeranz(n, x));
    return clip01(2 * smirnov_sf(n, x));
  }
  if (nxsq >= 370.0) return 0.0;
  if (nxsq >= 2.2) return clip01(2 * smirnov_sf(n, x));
  double cdf;
  if (nxsq >= 18.0) {
    cdf = 1.0;
  } else if (n <= 100000 && dn * std::pow(x, 1.5) <= 1.4) {
    cdf = kolmogorov_cdf_durbin(n, x);
  } else {
    cdf = kolmogorov_cdf_pelz_good(n, x);
  }
  return clip01(1.0 - cdf);
}

namespace {

// ------------------------------------------------------------------ exact two-sample
// Two-sided, n1 == n2 == n: P(D >= h/n) = 2 sum_k (-1)^(k+1) C(2n, n - kh) / C(2n, n), evaluated
// as 2 A0 (1 - A1 (1 - A2 (...))) with A_k the ratio of consecutive terms (no cancellation).
double ks_equal_two_sided(int64_t n, int64_t h) {
  double P = 0.0;
  for (int64_t k = static_cast<int64_t>(std::floor(static_cast<double>(n) / static_cast<double>(h))); k >= 0; --k) {
    double p1 = 1.0;
    for (int64_t j = 0; j < h; ++j)
      p1 = static_cast<double>(n - k * h - j) * p1 / static_cast<double>(n + k * h + j + 1);
    P = p1 * (1.0 - P);
  }
  return 2 * P;
}

// Two-sided, general sizes: probability that a uniformly random lattice path from (0,0) to (m,n)
// leaves the band |x/m - y/n| < h/lcm, by the recursion of Viehmann (2021) for 1 - P on the
// probability scale: A(i,j) = (i A(i-1,j) + j A(i,j-1)) / (i + j) inside the band, 1 outside.
double ks_band_two_sided(int64_t m, int64_t n, int64_t g, int64_t h) {
  if (m < n) std::swap(m, n);
  const int64_t mg = m / g, ng = n / g;
  const double dmg = static_cast<double>(mg), dh = static_cast<double>(h);
  std::vector<double> A(static_cast<size_t>(n + 1), 1.0);
  int64_t minj = 0, maxj = std::min<int64_t>(static_cast<int64_t>(std::ceil(dh / dmg)), n + 1);
  for (int64_t j = minj; j < maxj; ++j) A[j] = 0.0;
  for (int64_t i = 1; i <= m; ++i) {
    const double ngi = static_cast<double>(ng * i);
    minj = std::max<int64_t>(static_cast<int64_t>(std::floor((ngi - dh) / dmg)) + 1, 0);
    minj = std::min(minj, n);
    maxj = std::min<int64_t>(static_cast<int64_t>(std::ceil((ngi + dh) / dmg)), n + 1);
    if (maxj <= minj) return 1.0;
    const double di = static_cast<double>(i);
    double val = minj == 0 ? 0.0 : 1.0;
    for (int64_t j = minj; j < maxj; ++j) {
      const double dj = static_cast<double>(j);
      val = (A[j] * di + val * dj) / (di + dj);
      A[j] = val;
    }
  }
  return A[maxj - 1];
}

long double log_binom(int64_t a, int64_t b) {
  return std::lgamma(static_cast<long double>(a) + 1) - std::lgamma(static_cast<long double>(b) + 1) -
         std::lgamma(static_cast<long double>(a - b) + 1);
}

long double binom_ld(int64_t a, int64_t b) {
  if (b < 0 || b > a) return 0.0L;
  return std::round(std::exp(log_binom(a, b)));
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// One-sided, general sizes: number of lattice paths touching the line m y <= n x - h g (Hodges
// 1958), divided by C(m + n, n). False when C(m + n, n) overflows a double.
bool ks_paths_one_sided(int64_t m, int64_t n, int64_t g, int64_t h, double* p) {
  if (m < n) std::swap(m, n);
  const long double log_total = log_binom(m + n, n);
  if (log_total > std::log(static_cast<long double>(std::numeric_limits<double>::max()))) return false;
  const int64_t mg = m / g, ng = n / g;
  const int64_t lxj = n + floor_div(mg - h, mg);
  const long double total = binom_ld(m + n, n);
  long double paths;
  if (lxj <= 0) {
    paths = total;
  } else {
    std::vector<int64_t> xj(static_cast<size_t>(lxj));
    for (int64_t j = 0; j < lxj; ++j) xj[j] = (h + mg * j + ng - 1) / ng;
    std::vector<long double> B(static_cast<size_t>(lxj));
    B[0] = 1.0L;
    for (int64_t j = 1; j < lxj; ++j) {
      long double bj = binom_ld(xj[j] + j, j);
      for (int64_t i = 0; i < j; ++i) bj -= binom_ld(xj[j] - xj[i] + j - i, j - i) * B[i];
      B[j] = bj;
    }
    paths = 0.0L;
    for (int64_t j = 0; j < lxj; ++j) paths += B[j] * binom_ld(m - xj[j] + n - j, n - j);
  }
  if (!(paths <= total)) return false;
  *p = static_cast<double>(paths / total);
  return true;
}

}  // namespace

bool ks_2samp_exact_sf(int64_t n1, int64_t n2, int64_t h, Alternative alternative, double* p) {
  if (h == 0) {
    *p = 1.0;
    return true;
  }
  const int64_t g = std::gcd(n1, n2);
  double prob;
  if (alternative == Alternative::kTwoSided) {
    prob = n1 == n2 ? ks_equal_two_sided(n1, h) : ks_band_two_sided(n1, n2, g, h);
  } else if (n1 == n2) {
    // C(2n, n - h) / C(2n, n) as a product of h ratios.
    prob = 1.0;
    for (int64_t j = 0; j < h; ++j) prob *= static_cast<double>(n1 - j) / (static_cast<double>(n1 + j) + 1.0);
  } else if (!ks_paths_one_sided(n1, n2, g, h, &prob)) {
    return false;
  }
  if (!(prob >= 0.0 && prob <= 1.0)) return false;
  *p = prob;
  return true;
}

namespace {

double ks_asymptotic(int64_t n1, int64_t n2, double d, Alternative alternative) {
  const double m = static_cast<double>(std::max(n1, n2)), n = static_cast<double>(std::min(n1, n2));
  const double en = m * n / (m + n);
  if (alternative == Alternative::kTwoSided) {
    const double rounded = std::nearbyint(en);
    if (rounded < 1) return kNaN;  // kstwo is undefined at n = 0 (n1 = n2 = 1)
    return kstwo_sf(static_cast<int64_t>(rounded), d);
  }
  const double z = std::sqrt(en) * d;
  const double expt = -2 * (z * z) - 2 * z * (m + 2 * n) / std::sqrt(m * n * (m + n)) / 3.0;
  return std::exp(expt);
}

}  // namespace

template <class T>
TestResult ks_2samp(const T* ref, int64_t n_ref, const T* cur, int64_t n_cur, int64_t columns,
                    Alternative alternative, PMethod method, NanPolicy nan_policy) {
  return ks_from_summaries(summarize(ref, n_ref, cur, n_cur, columns, kKs, nan_policy, 1, "ks"), alternative,
                           method);
}

TestResult ks_from_summaries(ColumnSummaries summaries, Alternative alternative, PMethod method) {
  TestResult r;
  r.summaries = std::move(summaries);
  const ColumnSummaries& s = r.summaries;
  const int64_t columns = s.columns;
  const size_t D = static_cast<size_t>(columns);
  r.statistic.assign(D, 0.0);
  r.pvalue.assign(D, kNaN);
  r.exact.assign(D, 0);
  r.location.assign(D, 0.0);
  r.sign.assign(D, 1);
  r.fell_back.assign(D, 0);
  std::vector<int64_t> hs(D, 0);
  std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t>> exact_tasks;  // (n1, n2, h, column)
  constexpr int64_t kMaxAutoN = 10000;
  for (size_t j = 0; j < D; ++j) {
    const int64_t n1 = s.n_ref[j], n2 = s.n_cur[j];
    const double max_s = s.gap_max[j];
    const double min_s = std::min(1.0, std::max(0.0, -s.gap_min[j]));
    double d;
    if (alternative == Alternative::kLess || (alternative == Alternative::kTwoSided && min_s > max_s)) {
      d = min_s;
      r.location[j] = s.gap_min_at[j];
      r.sign[j] = -1;
    } else {
      d = max_s;
      r.location[j] = s.gap_max_at[j];
      r.sign[j] = 1;
    }
    const int64_t g = std::gcd(n1, n2), n1g = n1 / g, n2g = n2 / g;
    bool exact;
    if (method == PMethod::kAuto) {
      exact = std::max(n1, n2) <= kMaxAutoN;
    } else if (method == PMethod::kExact) {
      exact = static_cast<double>(n1g) < 2147483647.0 / static_cast<double>(n2g);
      if (!exact) r.fell_back[j] = 1;
    } else {
      exact = false;
    }
    if (exact) {
      const int64_t lcm = n1g * n2;
      const int64_t h = static_cast<int64_t>(std::nearbyint(d * static_cast<double>(lcm)));
      d = static_cast<double>(h) * 1.0 / static_cast<double>(lcm);
      hs[j] = h;
      exact_tasks.emplace_back(n1, n2, h, static_cast<int64_t>(j));
      r.exact[j] = 1;
    }
    r.statistic[j] = d;
  }

  // Exact p-values: one computation per distinct (n1, n2, h).
  std::sort(exact_tasks.begin(), exact_tasks.end());
  std::vector<size_t> starts;
  for (size_t t = 0; t < exact_tasks.size(); ++t) {
    if (t == 0 || std::get<0>(exact_tasks[t]) != std::get<0>(exact_tasks[t - 1]) ||
        std::get<1>(exact_tasks[t]) != std::get<1>(exact_tasks[t - 1]) ||
        std::get<2>(exact_tasks[t]) != std::get<2>(exact_tasks[t - 1]))
      starts.push_back(t);
  }
  const int64_t n_unique = static_cast<int64_t>(starts.size());
  {
    // Rough cost of one exact p-value: O(n) for equal sizes, the band width times m otherwise.
    int64_t work = 0;
    for (size_t t0 : starts) {
      const auto& task = exact_tasks[t0];
      const int64_t a = std::get<0>(task), b = std::get<1>(task), h = std::get<2>(task);
      const int64_t big = std::max(a, b), small = std::min(a, b), g = std::gcd(a, b);
      work += a == b ? a + h : big * std::min(small + 1, 2 * h / (big / g) + 2);
    }
    const int threads = threads_for(work, kMinParallelWork);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
    for (int64_t u = 0; u < n_unique; ++u) {
      const size_t t0 = starts[u], t1 = u + 1 < n_unique ? starts[u + 1] : exact_tasks.size();
      const auto& task = exact_tasks[t0];
      double p = kNaN;
      const bool ok = ks_2samp_exact_sf(std::get<0>(task), std::get<1>(task), std::get<2>(task), alternative, &p);
      for (size_t t = t0; t < t1; ++t) {
        const size_t j = static_cast<size_t>(std::get<3>(exact_tasks[t]));
        if (ok) {
          r.pvalue[j] = p;
        } else {
          r.exact[j] = 0;  // falls back to the asymptotic distribution at the rounded statistic
          r.fell_back[j] = 1;
        }
      }
    }
  }
  // Asymptotic p-values.
  {
    int64_t work = 0;  // Smirnov's series is O(n); the other branches are cheap
    for (int64_t j = 0; j < columns; ++j)
      if (!r.exact[j]) work += std::min(s.n_ref[j], s.n_cur[j]);
    const int threads = threads_for(work, kMinParallelWork);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
    for (int64_t j = 0; j < columns; ++j) {
      if (r.exact[j]) continue;
      r.pvalue[j] = ks_asymptotic(s.n_ref[j], s.n_cur[j], r.statistic[j], alternative);
    }
  }
  for (double& p : r.pvalue) p = clip01(p);
  return r;
}

template TestResult ks_2samp<float>(const float*, int64_t, const float*, int64_t, int64_t, Alternative, PMethod,
                                    NanPolicy);
template TestResult ks_2samp<double>(const double*, int64_t, const double*, int64_t, int64_t, Alternative, PMethod,
                                     NanPolicy);

}  // namespace drift
}  // namespace curata

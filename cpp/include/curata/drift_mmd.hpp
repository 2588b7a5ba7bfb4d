// Kernel two-sample test: unbiased MMD^2 with a Gaussian (RBF) kernel and every permutation of the
// labels evaluated in one tiled pass over the pooled kernel matrix.
//
// Pool Z = [ref; cur] (N = n + m rows). A labelling is a 0/1 vector a with n ones (the rows called
// "reference"). With K the N x N kernel matrix (never stored), the three block sums are
//   S_xx = a'Ka,  S_xy = a'K(1 - a) = a'K1 - a'Ka,  S_yy = (1 - a)'K(1 - a) = T - 2 a'K1 + a'Ka,
// where T = 1'K1 does not depend on a. The diagonal of an RBF kernel is 1, so the unbiased
// estimator (diagonal terms excluded) is
//   MMD^2_u(a) = (S_xx - n) / (n (n - 1)) + (S_yy - m) / (m (m - 1)) - 2 S_xy / (n m).
// Each labelling therefore needs one quadratic form q = a'Ka and one bilinear form l = a'K1.
// Both are accumulated over the upper triangle of tiles K_IJ (I <= J) for all B labellings at
// once: M = K_IJ A_J is a (tile x tile) by (tile x B) product, then
//   q += w * sum_i A_I[i] M[i],   l += A_I' (K_IJ 1) + [I < J] * 1' M,   T += w * 1' K_IJ 1,
// with w = 2 off the diagonal (symmetry) and 1 on it. Memory is O(N (d + B)); time O(N^2 (d + B)).
#pragma once

#include <cstdint>
#include <vector>

namespace curata {
namespace drift {

// MMD^2_u of each labelling. `labels` is (n + m, B) row-major, 1 where the pooled row is labelled
// reference (each column must hold exactly n ones); rows 0..n-1 of the pool are `ref`, n.. are
// `cur`. Kernel k(x, y) = exp(-|x - y|^2 / (2 sigma^2)), accumulated in float64.
// Throws std::invalid_argument for n < 2, m < 2, sigma <= 0, a label column without n ones.
template <class T>
std::vector<double> mmd_permutation_statistics(const T* ref, int64_t n, const T* cur, int64_t m, int64_t d,
                                               const uint8_t* labels, int64_t B, double sigma);

// exp(x) for x <= 0, branch-free and vectorisable (Cody-Waite reduction, degree-13 Taylor
// polynomial; <= 2 ulp for x >= -708, 0 below). Exposed for tests.
double exp_nonpositive(double x);

}  // namespace drift
}  // namespace curata

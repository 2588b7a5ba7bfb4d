// Uncertainty scores of the core library (higher = more uncertain) and the activations that
// produce their inputs. Plain C++17: row-major pointers in, results out. Inputs are validated
// here in the same pass that computes the result; errors are std::invalid_argument naming the
// argument (`name`), the row and the offending value.
//
// Every function is parallel over rows (OpenMP, curata::num_threads()) and deterministic: a row's
// result does not depend on the thread count or on the other rows.
#pragma once

#include <cstdint>

namespace curata {

// How probability rows are validated. Non-finite entries (NaN, +-inf) are always rejected. With
// `check`, every entry must also be >= 0 and every row must sum to 1 within `tolerance`; without
// it, values are used as given (entries <= 0 contribute 0 to entropies).
struct ProbabilityCheck {
  bool check = true;
  double tolerance = 1e-3;
  const char* name = "probs";
};

// out[r, :] = softmax of x[r, :] (rows x cols). +inf entries share a row's mass equally, -inf
// entries get 0; NaN or a row of only -inf throws.
template <class T> void softmax(const T* x, T* out, int64_t rows, int64_t cols, const char* name);

// out[i] = 1 / (1 + exp(-x[i])), stable for any finite or infinite x; NaN throws.
template <class T> void sigmoid(const T* x, T* out, int64_t n, const char* name);

// out[r] = -sum_c p log p (nats), 0 log 0 = 0.
template <class T> void entropy(const T* p, T* out, int64_t rows, int64_t cols, const ProbabilityCheck& check);

// out[r] = 1 - max_c p.
template <class T> void least_confidence(const T* p, T* out, int64_t rows, int64_t cols, const ProbabilityCheck& check);

// out[r] = 1 - (p1 - p2), p1 >= p2 the two largest entries (p2 = 0 when cols == 1).
template <class T> void margin(const T* p, T* out, int64_t rows, int64_t cols, const ProbabilityCheck& check);

// p is (samples, rows, cols). out[r] = max(0, H(mean_s p[s, r]) - mean_s H(p[s, r])).
// Memory: a block of item means, max(16384, cols) values per thread.
template <class T>
void bald(const T* p, T* out, int64_t samples, int64_t rows, int64_t cols, const ProbabilityCheck& check);

enum class Reduction : int { max = 0, mean = 1, sum = 2 };

// out[g] = reduction of values[i] over the i with groups[i] == g, for g in [0, n_groups);
// counts[g] = number of such i. Sums and means accumulate in double in index order, so results
// are deterministic. Groups with no member get fill_value. groups outside [0, n_groups) and NaN
// values throw. Serial: O(n + n_groups) time, O(n_groups) extra memory.
template <class T>
void aggregate(const T* values, const int64_t* groups, int64_t n, int64_t n_groups, Reduction how, T fill_value,
               T* out, int64_t* counts);

}  // namespace curata

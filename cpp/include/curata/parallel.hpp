// Thread count shared by every parallel region of the core library.
//
// OpenMP's omp_set_num_threads only affects the calling thread, but curata is called from many
// threads (the GIL is released), so the count lives in one process-wide atomic that each parallel
// region reads through num_threads().
#pragma once

#include <cstdint>

namespace curata {

// Threads each parallel region may use (>= 1). Defaults to CURATA_NUM_THREADS or all cores.
int num_threads();
// n >= 1 sets the count; n == 0 restores the default.
void set_num_threads(int n);
// Threads worth using for `work` independent items of roughly `min_per_thread` each.
int threads_for(int64_t work, int64_t min_per_thread);

}  // namespace curata

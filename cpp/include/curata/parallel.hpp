// Thread count shared by every parallel region of the core library.
//
// OpenMP's omp_set_num_threads only affects the calling thread, but curata is called from many
// threads (the GIL is released), so the count lives in one process-wide atomic that each parallel
// region reads through num_threads().
#pragma once

#include <cstdint>

namespace curata {

// Upper bound of the thread count. Each parallel region asks OpenMP for up to num_threads()
// threads (fewer for small work); far more than any machine has (2^31 - 1 was accepted) made
// libgomp fail to create them and exit the process.
inline constexpr int kMaxThreads = 1024;

// Threads each parallel region may use, in [1, kMaxThreads]. Defaults to CURATA_NUM_THREADS (read
// once, at the first use) or all cores.
int num_threads();
// n >= 1 sets the count (capped at kMaxThreads); n <= 0 restores the default.
void set_num_threads(int n);
// Threads worth using for `work` independent items of roughly `min_per_thread` each.
int threads_for(int64_t work, int64_t min_per_thread);
// The thread count a CURATA_NUM_THREADS value asks for: ASCII digits (optional '+', surrounding
// whitespace) of an integer in [1, kMaxThreads]; 0 for anything else (null, "", "2.5", "3abc",
// "0", values beyond kMaxThreads), which means "use the default".
int parse_thread_count(const char* text);

}  // namespace curata

// In-place row deletion for the persistent index (python/curata/_index.py): its storage is a
// growing table whose removed rows are squeezed out at once, so a remove() of r ids costs one pass
// over the rows after the first removed one, not one pass per id.
#include <cstring>
#include <stdexcept>
#include <string>

#include "curata/search.hpp"

namespace curata {
namespace search {

int64_t remove_rows(void* data, int64_t row_bytes, int64_t rows, const int64_t* removed, int64_t n_removed) {
  if (row_bytes < 0 || rows < 0 || n_removed < 0 || n_removed > rows)
    throw std::invalid_argument("remove_rows: bad sizes");
  for (int64_t i = 0; i < n_removed; ++i) {
    if (removed[i] < 0 || removed[i] >= rows || (i > 0 && removed[i] <= removed[i - 1]))
      throw std::invalid_argument("removed positions must be strictly increasing in [0, " + std::to_string(rows) +
                                  "), got " + std::to_string(removed[i]) + " at " + std::to_string(i));
  }
  char* base = static_cast<char*>(data);
  int64_t write = n_removed > 0 ? removed[0] : rows;
  for (int64_t i = 0; i < n_removed; ++i) {
    const int64_t run_begin = removed[i] + 1;
    const int64_t run_end = i + 1 < n_removed ? removed[i + 1] : rows;
    const int64_t run = run_end - run_begin;
    if (run > 0) {
      std::memmove(base + write * row_bytes, base + run_begin * row_bytes, static_cast<size_t>(run * row_bytes));
      write += run;
    }
  }
  return rows - n_removed;
}

}  // namespace search
}  // namespace curata

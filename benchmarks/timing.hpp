// What every benchmark here measures with: the wall time of one piece of work, and the median
// of repeats (less sensitive than the mean to a repeat the machine's load slowed down).
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

namespace numamove_bench {

/// Seconds work() took, on the steady clock.
template <class Work>
double seconds(Work work) {
  const auto start = std::chrono::steady_clock::now();
  work();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// The median of `values` (the upper one of an even count); `values` must not be empty.
inline double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace numamove_bench

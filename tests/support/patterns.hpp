// Test helpers: contents that show whether a move kept them. One family: fill() writes a word
// that depends on its position and a seed, so a page that moved with the wrong contents, or
// swapped places with another, shows; the checks below read it back, by word or by page.
#pragma once

#include <cstddef>
#include <cstdint>

#include "support/pages.hpp"

namespace numamove_test {

/// The word fill() writes at position `word` for `seed`.
inline std::uint64_t pattern(std::size_t word, std::uint64_t seed) {
  std::uint64_t x = (word + 1) * 0x9E3779B97F4A7C15ULL ^ seed;
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ULL;
  return x ^ (x >> 29);
}

/// Writes pattern(i, seed) into every word i of [data, data + bytes).
inline void fill(void* data, std::size_t bytes, std::uint64_t seed = 0) {
  auto* words = static_cast<std::uint64_t*>(data);
  for (std::size_t i = 0; i < bytes / sizeof(std::uint64_t); ++i) words[i] = pattern(i, seed);
}

/// Index of the first word that differs from fill()'s, or SIZE_MAX when all match.
inline std::size_t first_mismatch(const void* data, std::size_t bytes, std::uint64_t seed = 0) {
  const auto* words = static_cast<const std::uint64_t*>(data);
  for (std::size_t i = 0; i < bytes / sizeof(std::uint64_t); ++i)
    if (words[i] != pattern(i, seed)) return i;
  return SIZE_MAX;
}

/// True when [data, data + bytes) still holds what fill(data, bytes, seed) wrote.
inline bool intact(const void* data, std::size_t bytes, std::uint64_t seed = 0) {
  return first_mismatch(data, bytes, seed) == SIZE_MAX;
}

/// True when page `p` of a range that fill(first, ..., seed) wrote still holds its words.
inline bool page_intact(const char* first, std::size_t p, std::uint64_t seed = 0) {
  const std::size_t words = page() / sizeof(std::uint64_t);
  const auto* at = reinterpret_cast<const std::uint64_t*>(first + p * page());
  for (std::size_t i = 0; i < words; ++i)
    if (at[i] != pattern(p * words + i, seed)) return false;
  return true;
}

/// Index of the first of `pages` pages from `first` that fill(first, ..., seed) wrote whose
/// contents differ, or `pages` when none does.
inline std::size_t first_bad_page(const char* first, std::size_t pages, std::uint64_t seed = 0) {
  const std::size_t word = first_mismatch(first, pages * page(), seed);
  return word == SIZE_MAX ? pages : word * sizeof(std::uint64_t) / page();
}

}  // namespace numamove_test

// block_cache: a bounded per-thread cache of task allocations.
//
// Spawning many short tasks frees and allocates blocks of the same size in bursts (1,000 tasks
// spawned, then joined), which overflows glibc's small per-thread cache and falls to its locked
// arena. Each thread keeps freed task blocks of each 16-byte size class, up to a byte budget, and
// hands them out again. A block freed on another thread simply joins that thread's cache. Under
// sanitizers the cache is off, so that AddressSanitizer sees every use after free.
#pragma once

#include <cstddef>
#include <cstdint>

namespace shoal::rt::detail {

// Size class c holds blocks of 16c - 8 bytes: glibc adds an 8-byte size field and rounds chunks to
// 16, so such a block fills its chunk exactly. Larger blocks bypass the cache (class 0).
constexpr std::size_t k_block_granule = 16;
constexpr std::size_t k_max_cached_class = 64;  // blocks up to 1 KiB

inline uint32_t block_class_for(std::size_t bytes) noexcept {
  std::size_t c = (bytes + 8 + k_block_granule - 1) / k_block_granule;
  return c <= k_max_cached_class ? static_cast<uint32_t>(c) : 0;
}
inline std::size_t block_size_of(uint32_t size_class) noexcept {
  return size_class * k_block_granule - 8;
}

// Returns a block of at least `bytes` (exactly block_size_of(class) when the class is not 0).
void* allocate_block(std::size_t bytes, uint32_t size_class);
void free_block(void* p, uint32_t size_class) noexcept;

}  // namespace shoal::rt::detail

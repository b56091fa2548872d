#include "runtime/internal/block_cache.h"

#include <new>

namespace shoal::rt::detail {
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool k_cache_enabled = false;
#else
constexpr bool k_cache_enabled = true;
#endif

// At most this many bytes of free blocks per thread and size class.
constexpr std::size_t k_budget_per_class = 256 * 1024;

struct free_block_node {
  free_block_node* next;
};

struct thread_cache {
  free_block_node* head[k_max_cached_class + 1] = {};
  uint32_t count[k_max_cached_class + 1] = {};

  ~thread_cache() {
    for (auto* h : head) {
      while (h) {
        free_block_node* n = h->next;
        ::operator delete(static_cast<void*>(h));
        h = n;
      }
    }
  }
};

thread_local thread_cache t_cache;

}  // namespace

void* allocate_block(std::size_t bytes, uint32_t size_class) {
  if (k_cache_enabled && size_class != 0) {
    if (free_block_node* n = t_cache.head[size_class]) {
      t_cache.head[size_class] = n->next;
      --t_cache.count[size_class];
      return n;
    }
    return ::operator new(block_size_of(size_class));
  }
  return ::operator new(bytes);
}

void free_block(void* p, uint32_t size_class) noexcept {
  if (k_cache_enabled && size_class != 0 &&
      t_cache.count[size_class] * block_size_of(size_class) < k_budget_per_class) {
    auto* n = static_cast<free_block_node*>(p);
    n->next = t_cache.head[size_class];
    t_cache.head[size_class] = n;
    ++t_cache.count[size_class];
    return;
  }
  ::operator delete(p);
}

}  // namespace shoal::rt::detail

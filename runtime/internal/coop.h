#pragma once
#include "runtime/internal/task_header.h"
namespace shoal::rt::detail::coop {
inline uint32_t remaining() noexcept { return tls.budget; }
}

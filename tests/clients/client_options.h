// Client options for a test's own shoald.
#pragma once

#include <string>

#include "clients/cpp/client.h"

namespace shoal::client {

inline options at(const std::string& target) {
  options o;
  o.target = target;
  return o;
}

}  // namespace shoal::client

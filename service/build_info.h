// build_info: what shoald was built from — its version, build type and gRPC — for --version,
// Admin/Status and the shoal_build_info metric.
//
//   std::printf("%s\n", shoal::service::build_info::describe().c_str());
//   // shoald 0.1.0 (Release build, gRPC 1.51.1, GCC 12.2.0)
#pragma once

#include <string>

namespace shoal::service::build_info {

// The project's version (CMake's PROJECT_VERSION).
const char* version();
// CMAKE_BUILD_TYPE, with the sanitizers it was built with: "Release", "Debug+ASan".
const char* build_type();
// The gRPC library shoald runs on (the one loaded, not the headers').
std::string grpc_version();
// The compiler, as "GCC 12.2.0" or "clang 14.0.6".
std::string compiler();
// One line: "shoald VERSION (BUILD_TYPE build, gRPC X, COMPILER)".
std::string describe();

}  // namespace shoal::service::build_info

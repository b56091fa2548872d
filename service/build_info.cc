#include "service/build_info.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"

namespace shoal::service::build_info {
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SHOAL_SANITIZER_DETECTED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SHOAL_SANITIZER_DETECTED 1
#endif
#endif

constexpr const char* k_build_type = SHOAL_BUILD_TYPE
#if defined(__SANITIZE_ADDRESS__)
    "+ASan"
#elif defined(__SANITIZE_THREAD__)
    "+TSan"
#elif defined(SHOAL_SANITIZER_DETECTED)
    "+sanitizers"
#endif
    ;

}  // namespace

const char* version() { return SHOAL_VERSION; }

const char* build_type() { return k_build_type; }

std::string grpc_version() { return grpc::Version(); }

std::string compiler() {
#if defined(__clang__)
  return absl::StrCat("clang ", __clang_major__, ".", __clang_minor__, ".", __clang_patchlevel__);
#elif defined(__GNUC__)
  return absl::StrCat("GCC ", __GNUC__, ".", __GNUC_MINOR__, ".", __GNUC_PATCHLEVEL__);
#else
  return "unknown compiler";
#endif
}

std::string describe() {
  return absl::StrCat("shoald ", version(), " (", build_type(), " build, gRPC ", grpc_version(),
                      ", ", compiler(), ")");
}

}  // namespace shoal::service::build_info

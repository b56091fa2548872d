// Fuzzes the configuration loader: bytes as a config file's content, parsed, merged over the
// defaults and validated, as shoald does at start-up and on a reload. It never crashes, and its
// errors never quote the file: no run of 16 bytes of the input that is not a plain (dotted) name,
// as settings and message types have, appears in an error (a config file may hold secrets, and its errors reach logs and Status).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/str_replace.h"
#include "service/config/config.h"
#include "tests/fuzz/fuzz_env.h"

namespace {

using namespace shoal;
namespace config = shoal::service::config;

bool plain(std::string_view s) {
  for (char ch : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '.') {
      return false;
    }
  }
  return true;
}

// Whether `hay` contains `needle`: compared byte by byte, without coverage, so that libFuzzer
// does not learn the error's text from the check and write it into inputs (its comparison hooks
// would, and an input holding Shoal's own words would then look quoted).
__attribute__((no_sanitize("coverage"))) bool contains(std::string_view hay,
                                                       std::string_view needle) {
  for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    std::size_t j = 0;
    while (j < needle.size() && hay[i + j] == needle[j]) ++j;
    if (j == needle.size()) return true;
  }
  return false;
}

void check_quotes_nothing(std::string_view input, const std::string& error) {
  // What Shoal writes in place of what it leaves out.
  const std::string told = absl::StrReplaceAll(
      error, {{"(a value not shown)", ""}, {"(a name not shown)", ""}});
  constexpr std::size_t k_run = 16;
  for (std::size_t i = 0; i + k_run <= input.size(); ++i) {
    const std::string_view run = input.substr(i, k_run);
    if (plain(run)) continue;
    if (contains(told, run)) {
      fuzz::fail("an error quotes the file: " + error);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t n) {
  const std::string_view input(reinterpret_cast<const char*>(data), n);
  auto file = config::parse_json(input);
  if (!file.ok()) {
    if (file.status().message().empty()) fuzz::fail("a parse error without a message");
    check_quotes_nothing(input, std::string(file.status().message()));
    return 0;
  }
  const v1::ServerConfig base = config::defaults();
  const v1::ServerConfig merged = config::merge({&base, &*file});
  if (auto st = config::validate(merged); !st.ok()) {
    check_quotes_nothing(input, std::string(st.message()));
    return 0;
  }
  // A valid file as a reload: what it would change at start-up is named, never quoted.
  check_quotes_nothing(input, config::startup_differences(base, merged));
  return 0;
}

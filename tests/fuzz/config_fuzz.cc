// Fuzzes the configuration loader: bytes as a config file's content, parsed, merged over the
// defaults and validated, as shoald does at start-up and on a reload. It never crashes, and its
// errors never quote the file: no run of 16 bytes of the input that holds a byte no error text
// has (a control byte, or one beyond ASCII) appears in an error (a config file may hold secrets,
// and its errors reach logs and Status).
#include <algorithm>
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

bool foreign(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return (c < 0x20 && c != '\n' && c != '\t') || c >= 0x7f;
  });
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
  // Shoal's own words: what it writes in place of what it leaves out, and the type it names.
  const std::string told = absl::StrReplaceAll(error, {{"(a value not shown)", ""},
                                                       {"(a name not shown)", ""},
                                                       {"for shoal.v1.ServerConfig: ", ""}});
  constexpr std::size_t k_run = 16;
  for (std::size_t i = 0; i + k_run <= input.size(); ++i) {
    const std::string_view run = input.substr(i, k_run);
    // Only runs that hold a byte no error text has (a control byte, or one beyond ASCII): any
    // run of printable text may also be words of Shoal's or protobuf's own, which libFuzzer
    // learns from the comparisons it watches and writes into inputs.
    if (plain(run) || !foreign(run)) continue;
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

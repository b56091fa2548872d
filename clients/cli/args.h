// args: shoalctl's command line — a command, positional arguments and --flags.
//
// Flags are --name, --name=value or --name value (for flags that take one); `--` ends the flags.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace shoal::cli {

struct flag_spec {
  std::string name;
  bool takes_value = false;
  std::string help;
};

struct parsed_args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;  // a flag without a value maps to ""

  bool has(const std::string& name) const { return flags.count(name) > 0; }
  std::optional<std::string> value(const std::string& name) const;
  // The flag as an integer; an error names the flag.
  absl::StatusOr<std::optional<int64_t>> integer(const std::string& name) const;
};

// Parses `args` against the flags a command accepts (plus the global ones).
absl::StatusOr<parsed_args> parse(const std::vector<std::string>& args,
                                  const std::vector<flag_spec>& accepted);

// Splits one line of `pipe` input into words, as a shell would without expansions: blanks
// separate words; "double quotes" keep blanks and take \" \\ \n \t \r \0 escapes; 'single
// quotes' keep everything as is; quoted and bare parts next to each other make one word; ""
// is an empty word.
//   split_words(R"(put "a b" 'x y')")  ->  {"put", "a b", "x y"}
absl::StatusOr<std::vector<std::string>> split_words(std::string_view line);

}  // namespace shoal::cli

#include "clients/cli/args.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace shoal::cli {

std::optional<std::string> parsed_args::value(const std::string& name) const {
  auto it = flags.find(name);
  if (it == flags.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<std::optional<int64_t>> parsed_args::integer(const std::string& name) const {
  auto v = value(name);
  if (!v) return std::optional<int64_t>();
  int64_t n = 0;
  if (!absl::SimpleAtoi(*v, &n)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " needs an integer, not '", *v, "'"));
  }
  return std::optional<int64_t>(n);
}

absl::StatusOr<parsed_args> parse(const std::vector<std::string>& args,
                                  const std::vector<flag_spec>& accepted) {
  parsed_args out;
  bool flags_done = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (flags_done || !absl::StartsWith(a, "--") || a == "-") {
      out.positional.push_back(a);
      continue;
    }
    if (a == "--") {
      flags_done = true;
      continue;
    }
    std::string name = a.substr(2);
    std::optional<std::string> inline_value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name.resize(eq);
    }
    const flag_spec* spec = nullptr;
    for (const auto& f : accepted) {
      if (f.name == name) spec = &f;
    }
    if (spec == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    if (!spec->takes_value) {
      if (inline_value)
        return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      out.flags[name] = "";
    } else if (inline_value) {
      out.flags[name] = *inline_value;
    } else if (i + 1 < args.size()) {
      out.flags[name] = args[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
    }
  }
  return out;
}

}  // namespace shoal::cli

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

absl::StatusOr<std::vector<std::string>> split_words(std::string_view line) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;  // a word has begun (it may be empty: "")
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == ' ' || c == '\t' || c == '\r') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\'') {
      const auto end = line.find('\'', i + 1);
      if (end == std::string_view::npos) return absl::InvalidArgumentError("unterminated quote");
      word.append(line.substr(i + 1, end - i - 1));
      i = end;
    } else if (c == '"') {
      for (++i;; ++i) {
        if (i >= line.size()) return absl::InvalidArgumentError("unterminated quote");
        if (line[i] == '"') break;
        if (line[i] != '\\' || i + 1 >= line.size()) {
          word.push_back(line[i]);
          continue;
        }
        switch (line[++i]) {
          case 'n':
            word.push_back('\n');
            break;
          case 't':
            word.push_back('\t');
            break;
          case 'r':
            word.push_back('\r');
            break;
          case '0':
            word.push_back('\0');
            break;
          default:
            word.push_back(line[i]);  // \" \\ and any other character as itself
        }
      }
    } else {
      word.push_back(c);
    }
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

}  // namespace shoal::cli

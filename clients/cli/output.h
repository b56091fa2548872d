// output: how shoalctl shows bytes and messages.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "google/protobuf/message.h"

namespace shoal::cli {

// Printable UTF-8 as it is; anything else (invalid UTF-8, control characters) C-escaped, so a
// terminal never receives raw binary.
std::string display(std::string_view bytes);

// How a command prints values: the bytes as they are (what `get > file` wants), display()'s
// escapes (what a terminal wants), base64 or lowercase hex.
enum class encoding { raw, escaped, base64, hex };
std::string encode(std::string_view bytes, encoding e);

// protobuf's JSON mapping takes bytes fields in base64. This turns a JSON text whose bytes
// fields (keys, values...) are plain strings into that mapping, for `type`: every string in a
// bytes field is base64-encoded, through nested messages and lists. An error names the
// problem (not JSON, not an object).
absl::StatusOr<std::string> text_bytes_to_base64(std::string_view json,
                                                 const google::protobuf::Descriptor* type);
// A JSON string literal, quotes included.
std::string json_string(std::string_view text);
// Protobuf's JSON mapping on one line (bytes in base64, as grpcurl shows them).
std::string to_json(const google::protobuf::Message& m);

}  // namespace shoal::cli

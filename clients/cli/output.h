// output: how shoalctl shows bytes and messages.
#pragma once

#include <string>
#include <string_view>

#include "google/protobuf/message.h"

namespace shoal::cli {

// Printable UTF-8 as it is; anything else (invalid UTF-8, control characters) C-escaped, so a
// terminal never receives raw binary.
std::string display(std::string_view bytes);
// Protobuf's JSON mapping on one line (bytes in base64, as grpcurl shows them).
std::string to_json(const google::protobuf::Message& m);

}  // namespace shoal::cli

#include "clients/cli/output.h"

#include "absl/strings/escaping.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace shoal::cli {
namespace {

// Well-formed UTF-8 sequences and no control characters (tab excepted).
bool printable_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
      ++i;
      continue;
    }
    int extra;  // continuation bytes after the lead byte
    if (c >= 0xc2 && c <= 0xdf) {
      extra = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      extra = 2;
    } else if (c >= 0xf0 && c <= 0xf4) {
      extra = 3;
    } else {
      return false;
    }
    if (i + static_cast<std::size_t>(extra) >= s.size()) return false;
    for (int k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    }
    i += static_cast<std::size_t>(extra) + 1;
  }
  return true;
}

}  // namespace

std::string display(std::string_view bytes) {
  if (printable_utf8(bytes)) return std::string(bytes);
  return absl::CEscape(absl::string_view(bytes.data(), bytes.size()));
}

std::string encode(std::string_view bytes, encoding e) {
  const absl::string_view b(bytes.data(), bytes.size());
  switch (e) {
    case encoding::raw:
      return std::string(bytes);
    case encoding::escaped:
      return display(bytes);
    case encoding::base64:
      return absl::Base64Escape(b);
    case encoding::hex:
      return absl::BytesToHexString(b);
  }
  return std::string(bytes);
}

namespace {

namespace pb = google::protobuf;

void bytes_fields_to_base64(pb::Value& v, const pb::Descriptor* type);

// One field's JSON value: a string in a bytes field is encoded; a message is walked.
void field_to_base64(pb::Value& v, const pb::FieldDescriptor* f) {
  if (v.kind_case() == pb::Value::kListValue) {
    for (auto& item : *v.mutable_list_value()->mutable_values()) field_to_base64(item, f);
    return;
  }
  if (f->type() == pb::FieldDescriptor::TYPE_BYTES && v.kind_case() == pb::Value::kStringValue) {
    v.set_string_value(absl::Base64Escape(v.string_value()));
  } else if (f->type() == pb::FieldDescriptor::TYPE_MESSAGE) {
    bytes_fields_to_base64(v, f->message_type());
  }
}

void bytes_fields_to_base64(pb::Value& v, const pb::Descriptor* type) {
  if (v.kind_case() != pb::Value::kStructValue) return;
  for (auto& [name, value] : *v.mutable_struct_value()->mutable_fields()) {
    const pb::FieldDescriptor* f = type->FindFieldByCamelcaseName(name);
    if (f == nullptr) f = type->FindFieldByName(name);
    if (f != nullptr) field_to_base64(value, f);  // unknown names: the parser reports them
  }
}

}  // namespace

absl::StatusOr<std::string> text_bytes_to_base64(std::string_view json,
                                                 const google::protobuf::Descriptor* type) {
  pb::Value v;
  if (auto st = pb::util::JsonStringToMessage(std::string(json), &v); !st.ok()) {
    return absl::InvalidArgumentError("not JSON: " + st.ToString());
  }
  if (v.kind_case() != pb::Value::kStructValue) {
    return absl::InvalidArgumentError("not a JSON object");
  }
  bytes_fields_to_base64(v, type);
  std::string out;
  (void)pb::util::MessageToJsonString(v, &out);
  return out;
}

std::string json_string(std::string_view text) {
  pb::Value v;
  v.set_string_value(std::string(text));
  std::string out;
  (void)pb::util::MessageToJsonString(v, &out);
  return out;
}

std::string to_json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

}  // namespace shoal::cli

#include "service/replica/frame.h"

#include <cstdint>

#include "service/replica/bytes.h"

namespace shoal::service::replica {
namespace {

constexpr uint8_t k_frame_mark = 0;  // a payload's first byte is never 0
constexpr uint8_t k_frame_version = 1;

std::string framed(std::vector<std::string>& payloads, std::size_t begin, std::size_t end) {
  if (end - begin == 1) return std::move(payloads[begin]);
  std::size_t size = 2 + sizeof(uint32_t);
  for (std::size_t i = begin; i < end; ++i) size += sizeof(uint32_t) + payloads[i].size();
  std::string out;
  out.reserve(size);
  put_int<uint8_t>(&out, k_frame_mark);
  put_int<uint8_t>(&out, k_frame_version);
  put_int(&out, static_cast<uint32_t>(end - begin));
  for (std::size_t i = begin; i < end; ++i) {
    put_int(&out, static_cast<uint32_t>(payloads[i].size()));
    out.append(payloads[i]);
  }
  return out;
}

// The frame's payloads, or false if it does not parse (`out` then holds what did).
bool unframe(std::string_view in, std::vector<std::string_view>* out) {
  uint8_t mark = 0;
  uint8_t version = 0;
  uint32_t n = 0;
  if (!get_int(&in, &mark) || !get_int(&in, &version) || !get_int(&in, &n) ||
      version != k_frame_version || uint64_t{n} * (sizeof(uint32_t) + 1) > in.size()) {
    return false;  // each payload takes its size and at least a byte: n is bounded before use
  }
  out->reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t size = 0;
    if (!get_int(&in, &size) || size == 0 || size > in.size()) return false;
    out->push_back(in.substr(0, size));
    in.remove_prefix(size);
  }
  // The disk log's padding: fewer than 8 zeros.
  return in.size() < 8 && in.find_first_not_of('\0') == std::string_view::npos;
}

}  // namespace

std::vector<std::string> frame_entries(std::vector<std::string> payloads,
                                       std::vector<std::size_t>* counts) {
  std::vector<std::string> entries;
  if (counts != nullptr) counts->clear();
  std::size_t begin = 0;
  std::size_t bytes = 0;
  for (std::size_t i = 0; i <= payloads.size(); ++i) {
    const bool last = i == payloads.size();
    if (i > begin && (last || bytes + payloads[i].size() > k_frame_bytes)) {
      entries.push_back(framed(payloads, begin, i));
      if (counts != nullptr) counts->push_back(i - begin);
      begin = i;
      bytes = 0;
    }
    if (!last) bytes += payloads[i].size();
  }
  return entries;
}

bool for_each_payload(std::string_view entry, absl::FunctionRef<void(std::string_view)> each) {
  if (entry.empty() || static_cast<uint8_t>(entry[0]) != k_frame_mark) {
    each(entry);
    return true;
  }
  std::vector<std::string_view> payloads;
  if (!unframe(entry, &payloads)) return false;
  for (std::string_view p : payloads) each(p);
  return true;
}

}  // namespace shoal::service::replica

// range_reader: the entries of a Range, page after page, following the continuation key.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "shoal/v1/kv.grpc.pb.h"

namespace shoal::client {

class client;

struct range_options {
  std::string prefix;      // used unless start or end is set
  std::string start, end;  // [start, end); an empty end: no upper bound
  uint32_t page_size = 0;  // 0: the server's page cap
  bool keys_only = false;
};

class range_reader {
 public:
  // The next entry; nullopt at the end. An error ends the reading.
  absl::StatusOr<std::optional<v1::Entry>> next();
  // The store's revision when the first page was read (valid after the first next()). Watch from
  // revision() + 1 to follow changes made after the Range.
  uint64_t revision() const { return revision_; }
  int pages() const { return pages_; }

 private:
  friend class client;
  range_reader(client* c, range_options o) : client_(c), options_(std::move(o)) {}
  absl::Status fetch();

  client* client_;
  range_options options_;
  std::deque<v1::Entry> buffered_;
  std::string continuation_;
  bool done_ = false;
  uint64_t revision_ = 0;
  int pages_ = 0;
};

}  // namespace shoal::client

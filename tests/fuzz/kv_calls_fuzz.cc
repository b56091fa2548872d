// Fuzzes the KV handlers as shoald runs them: each input is a sequence of calls (Get, Put, Delete,
// Increment, Range, Batch, Txn, and the clock moving), each call's request parsed from the
// input's bytes and run against one fresh store. After every call:
//   - an OK reply fits in a message (the reply budget), an error has a message and is never
//     INTERNAL or UNKNOWN;
//   - a call that failed wrote nothing (the revision, the key count and the byte count stand);
//   - the store's key and byte counts match its contents.
//
// An input: [method][size][length: 2 bytes][request bytes] ..., where `size` > 0 makes every
// value the request writes size × 256 bytes long (a few input bytes reach the limits).
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "service/handlers/kv.h"
#include "service/handlers/screen.h"
#include "tests/fuzz/fuzz_env.h"

namespace {

using namespace shoal;
using fuzz::env;
using fuzz::fail;
namespace handlers = shoal::service::handlers;
namespace store = shoal::service::store;

void inflate_op(v1::Op& op, std::size_t size) {
  if (op.has_put()) op.mutable_put()->set_value(fuzz::inflate(op.put().value(), size));
}

template <class Ops>
void inflate_ops(Ops& ops, std::size_t size) {
  for (auto& op : ops) inflate_op(op, size);
}

// What must not move when a call fails.
struct footprint {
  uint64_t revision, keys, bytes;
  bool operator==(const footprint&) const = default;
};
footprint footprint_of(env& e) { return {e.kv.revision(), e.kv.keys(), e.kv.bytes()}; }

// The counts the store keeps match what it holds (the full scan expires what is due first).
void check_counts(env& e) {
  store::range_query all;
  all.max_items = SIZE_MAX;
  all.max_bytes = SIZE_MAX;
  const store::range_page page = e.kv.range(all);
  uint64_t bytes = 0;
  for (const auto& c : page.entries) bytes += c.key.size() + c.value.size();
  if (page.entries.size() != e.kv.keys()) fail("the key count does not match the store");
  if (bytes != e.kv.bytes()) fail("the byte count does not match the store");
}

template <class Req>
bool parse(const std::vector<uint8_t>& bytes, Req* req) {
  return req->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

// Runs one unary call parsed from `bytes`; a request that does not parse is not a call.
template <class Req, class Resp>
void unary(env& e, const std::vector<uint8_t>& bytes, std::size_t size, bool writes,
           grpc::Status (*handle)(service::context&, const Req&, Resp&)) {
  Req req;
  if (!parse(bytes, &req)) return;
  if constexpr (std::is_same_v<Req, v1::PutRequest>) {
    req.set_value(fuzz::inflate(req.value(), size));
  }
  const footprint before = footprint_of(e);
  Resp resp;
  const grpc::Status st = handle(e.ctx, req, resp);
  e.check_reply(st, resp);
  if (writes && !st.ok() && !(footprint_of(e) == before)) {
    fail("a failed " + req.GetTypeName() + " changed the store: " + st.error_message());
  }
}

// A Batch arrives raw: its bytes are screened and parsed as shoald does (screen.h).
void batch(env& e, const std::vector<uint8_t>& bytes, std::size_t size) {
  grpc::Slice slice(bytes.data(), bytes.size());
  grpc::ByteBuffer wire(&slice, 1);
  v1::BatchRequest req;
  const grpc::Status parsed =
      handlers::screen_and_parse(wire, handlers::screen_batch, *e.cfg, &req);
  if (!parsed.ok()) {
    if (parsed.error_code() != grpc::StatusCode::INVALID_ARGUMENT) fail("a screen's odd refusal");
    return;
  }
  inflate_ops(*req.mutable_ops(), size);
  v1::BatchResponse resp;
  const grpc::Status st = handlers::batch(e.ctx, req, resp);
  e.check_reply(st, resp);
  if (st.ok() && resp.results_size() != req.ops_size()) fail("a Batch result is missing");
}

void txn(env& e, const std::vector<uint8_t>& bytes, std::size_t size) {
  v1::TxnRequest req;
  if (!parse(bytes, &req)) return;
  inflate_ops(*req.mutable_success(), size);
  inflate_ops(*req.mutable_failure(), size);
  const footprint before = footprint_of(e);
  v1::TxnResponse resp;
  const grpc::Status st = handlers::txn(e.ctx, req, resp);
  e.check_reply(st, resp);
  if (!st.ok() && !(footprint_of(e) == before)) fail("a failed Txn wrote: " + st.error_message());
}

}  // namespace

// The input, a call at a time: [method][size][length, 2 bytes little-endian][request bytes].
struct reader {
  const uint8_t* at;
  const uint8_t* end;
  std::size_t left() const { return static_cast<std::size_t>(end - at); }
  uint8_t byte() { return left() > 0 ? *at++ : 0; }
  std::vector<uint8_t> bytes(std::size_t n) {
    n = std::min(n, left());
    std::vector<uint8_t> out(at, at + n);
    at += n;
    return out;
  }
};

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t n) {
  reader in{data, data + n};
  env e;
  while (in.left() > 0) {
    const uint8_t method = in.byte() % 9;
    const std::size_t size = std::size_t{in.byte()} * 256;
    const std::size_t length = in.byte() | (std::size_t{in.byte()} << 8);
    const std::vector<uint8_t> bytes = in.bytes(length);
    switch (method) {
      case 0:
        unary(e, bytes, size, false, handlers::get);
        break;
      case 1:
        unary(e, bytes, size, true, handlers::put);
        break;
      case 2:
        unary(e, bytes, size, true, handlers::remove);
        break;
      case 3:
        unary(e, bytes, size, true, handlers::increment);
        break;
      case 4:
        unary(e, bytes, size, false, handlers::range);
        break;
      case 5:
        batch(e, bytes, size);
        break;
      case 6:
        txn(e, bytes, size);
        break;
      case 7:
        e.clock.advance(std::chrono::milliseconds(size * 4 + length));
        break;
      case 8:
        e.kv.expire_due();
        break;
    }
    check_counts(e);
  }
  return 0;
}

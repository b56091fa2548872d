// Writes the hand-made seeds of the fuzz corpora: a few requests of every kind, near the limits
// fuzz_env.h sets, in each target's input format. libFuzzer grows the corpora from these.
//
//   build-clang/tests/fuzz/fuzz_seeds tests/fuzz/corpus
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "service/wal/record.h"
#include "service/wal/snapshot.h"
#include "shoal/v1/kv.pb.h"

namespace {

namespace v1 = ::shoal::v1;

void write(const std::filesystem::path& dir, const std::string& name, const std::string& bytes) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

// kv_calls_fuzz.cc's format: [method][size][length, 2 bytes little-endian][request].
enum method : uint8_t { get, put, del, incr, range, batch, txn, advance, expire };
std::string call(method m, const google::protobuf::Message& req, uint8_t size = 0) {
  const std::string body = req.SerializeAsString();
  std::string out{static_cast<char>(m), static_cast<char>(size),
                  static_cast<char>(body.size() & 0xff), static_cast<char>(body.size() >> 8)};
  return out + body;
}
std::string tick(uint16_t ms) {
  return std::string{static_cast<char>(advance), 0, static_cast<char>(ms & 0xff),
                     static_cast<char>(ms >> 8)};
}

v1::PutRequest put_req(const std::string& key, const std::string& value) {
  v1::PutRequest p;
  p.set_key(key);
  p.set_value(value);
  return p;
}
v1::Op op_get(const std::string& key) {
  v1::Op op;
  op.mutable_get()->set_key(key);
  return op;
}
v1::Op op_put(const std::string& key, const std::string& value) {
  v1::Op op;
  *op.mutable_put() = put_req(key, value);
  return op;
}

void kv_calls(const std::filesystem::path& dir) {
  v1::GetRequest g;
  g.set_key("k");
  v1::PutRequest ttl = put_req("t", "v");
  ttl.set_ttl_ms(50);
  v1::PutRequest prev = put_req("k", "w");
  prev.set_return_previous(true);
  prev.mutable_condition()->set_if_absent(true);
  v1::DeleteRequest d;
  d.set_key("a/");
  d.set_by_prefix(true);
  d.set_return_previous(true);
  v1::IncrementRequest inc;
  inc.set_key("n");
  inc.set_delta(9);
  v1::RangeRequest r;
  r.set_prefix("");
  v1::BatchRequest b;
  for (int i = 0; i < 8; ++i) *b.add_ops() = op_get("k");
  *b.add_ops() = op_put("a/1", "x");
  v1::TxnRequest t;
  auto* c = t.add_compares();
  c->set_key("k");
  c->set_target(v1::Compare::VERSION);
  c->set_result(v1::Compare::GREATER);
  c->set_number(0);
  for (int i = 0; i < 4; ++i) *t.add_success() = op_get("k");
  *t.add_failure() = op_put("k", "f");
  v1::Op range_op;
  range_op.mutable_range()->set_prefix("a/");
  *t.add_success() = range_op;

  write(dir, "put_get", call(put, put_req("k", "v")) + call(get, g));
  write(dir, "big_values",
        call(put, put_req("k", "v"), 200) + call(put, put_req("a/1", "x"), 200) + call(batch, b) +
            call(txn, t) + call(range, r));
  write(dir, "ttl", call(put, ttl) + tick(60) + call(get, v1::GetRequest()) + call(range, r));
  write(dir, "conditional", call(put, put_req("k", "v")) + call(put, prev, 100));
  write(dir, "prefix_delete",
        call(put, put_req("a/1", "1")) + call(put, put_req("a/2", "2")) + call(del, d));
  write(dir, "increment",
        call(incr, inc) + call(incr, inc) + call(put, put_req("n", "x")) + call(incr, inc));
}

void pipeline_frame(const std::filesystem::path& dir) {
  v1::PipelineRequest p;
  p.set_id(7);
  *p.mutable_op() = op_get("b");
  write(dir, "op_get", p.SerializeAsString());
  v1::PipelineRequest q;
  q.set_id(8);
  for (int i = 0; i < 3; ++i) *q.mutable_batch()->add_ops() = op_get("b");
  write(dir, "batch_over_budget", q.SerializeAsString());
  v1::PipelineRequest w;
  w.set_id(9);
  *w.mutable_batch()->add_ops() = op_put("a/3", "x");
  v1::Op range_op;
  range_op.mutable_range()->set_prefix("a");
  *w.mutable_batch()->add_ops() = range_op;
  write(dir, "batch_write_range", w.SerializeAsString());
  write(dir, "not_a_request", std::string("\x0a\xff\xff\xff", 4));
}

void config(const std::filesystem::path& dir) {
  write(dir, "live", R"({"live": {"maxKeyBytes": 100, "logLevel": "debug"}})");
  write(dir, "startup", R"({"startup": {"maxMessageBytes": 67108864, "runtime": "current_thread"},
 "live": {"maxValueBytes": 33554432}})");
  write(dir, "broken", "{\"live\": {\"maxKeyBytes\": \"x\"}}\nroot:x:0:0");
  write(dir, "unknown", R"({"live": {"maxKeyBites": 1}})");
}

void store_model(const std::filesystem::path& dir) {
  // FuzzedDataProvider's input has no readable format: bytes it turns into operations.
  std::string ops;
  for (int i = 0; i < 64; ++i) ops += static_cast<char>(i * 37 + 11);
  write(dir, "mixed", ops);
}

}  // namespace

// wal_files_fuzz.cc's input: a log segment, or a snapshot file.
void wal_files(const std::filesystem::path& dir) {
  namespace wal = ::shoal::service::wal;
  std::string log;
  for (uint64_t r = 1; r <= 3; ++r) {
    wal::record_builder b(&log, r, 1'700'000'000'000'000'000 + static_cast<int64_t>(r), r == 3);
    b.put("key" + std::to_string(r), "value", {.create_revision = r, .version = 1});
    if (r == 3) b.remove("key1");
    b.finish();
  }
  write(dir, "log", log);
  std::string expire;
  wal::record_builder e(&expire, 9, 1, false);
  e.expire("gone");
  e.finish();
  write(dir, "expire", expire);
  wal::snap_state state;
  state["a"] = {.value = "1", .create_revision = 1, .mod_revision = 2, .version = 2};
  state["b"] = {
      .value = "22", .create_revision = 3, .mod_revision = 3, .version = 1, .deadline_wall_ns = 5};
  write(dir, "snapshot", wal::encode_snapshot(3, state, 7));
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root = argv[1];
  kv_calls(root / "kv_calls");
  pipeline_frame(root / "pipeline_frame");
  config(root / "config");
  store_model(root / "store_model");
  wal_files(root / "wal_files");
  return 0;
}

// The shared client scenario (tests/clients/scenario.json), run by the C++ client library.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>

#include "clients/cpp/client.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "tests/clients/client_options.h"
#include "tests/e2e/shoald_process.h"

namespace shoal::client {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

Struct load_scenario() {
  std::ifstream in(SCENARIO_PATH);
  std::stringstream text;
  text << in.rdbuf();
  Struct s;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(text.str(), &s).ok());
  return s;
}

const Value* field(const Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? nullptr : &it->second;
}
std::string str(const Struct& s, const std::string& name) {
  const Value* v = field(s, name);
  return v ? v->string_value() : "";
}
int64_t num(const Struct& s, const std::string& name) {
  const Value* v = field(s, name);
  return v ? static_cast<int64_t>(v->number_value()) : 0;
}
bool flag(const Struct& s, const std::string& name) {
  const Value* v = field(s, name);
  return v && v->bool_value();
}

// Runs of consecutive DELETE events come in no particular key order: sort their keys.
std::vector<std::string> canonical(std::vector<std::pair<std::string, std::string>> events) {
  for (std::size_t i = 0; i < events.size();) {
    std::size_t j = i;
    while (j < events.size() && events[j].first == "DELETE") ++j;
    std::sort(events.begin() + static_cast<std::ptrdiff_t>(i),
              events.begin() + static_cast<std::ptrdiff_t>(j));
    i = j == i ? i + 1 : j;
  }
  std::vector<std::string> out;
  for (auto& [type, key] : events) out.push_back(type + " " + key);
  return out;
}

TEST(client_scenario, the_cpp_library_runs_the_shared_scenario) {
  testing::shoald_process server;
  client kv(at(server.address()));
  const Struct scenario = load_scenario();
  int n = 0;
  for (const Value& step_value : field(scenario, "steps")->list_value().values()) {
    const Struct& step = step_value.struct_value();
    const Struct& expect = field(step, "expect") ? field(step, "expect")->struct_value() : Struct();
    const std::string op = str(step, "op");
    SCOPED_TRACE("step " + std::to_string(++n) + ": " + op + " " + str(step, "key"));
    if (op == "put") {
      put_options o;
      if (field(step, "ttl_ms")) o.ttl_ms = num(step, "ttl_ms");
      o.if_absent = flag(step, "if_absent");
      o.if_revision = static_cast<uint64_t>(num(step, "if_revision"));
      auto r = kv.put(str(step, "key"), str(step, "value"), o);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->applied, flag(expect, "applied"));
      if (field(expect, "revision")) {
        EXPECT_EQ(r->revision, num(expect, "revision"));
      }
      if (field(expect, "current_value")) {
        EXPECT_EQ(r->entry.value(), str(expect, "current_value"));
      }
    } else if (op == "get") {
      auto r = kv.get(str(step, "key"));
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_EQ(r->has_value(), flag(expect, "found"));
      if (!r->has_value()) continue;
      if (field(expect, "value")) {
        EXPECT_EQ((*r)->value(), str(expect, "value"));
      }
      if (field(expect, "version")) {
        EXPECT_EQ((*r)->version(), num(expect, "version"));
      }
      if (field(expect, "mod_revision")) {
        EXPECT_EQ((*r)->mod_revision(), num(expect, "mod_revision"));
      }
      if (field(expect, "create_revision")) {
        EXPECT_EQ((*r)->create_revision(), num(expect, "create_revision"));
      }
    } else if (op == "incr") {
      auto r = kv.increment(str(step, "key"), num(step, "delta"));
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(*r, num(expect, "value"));
      auto got = kv.get(str(step, "key"));
      ASSERT_TRUE(got.ok() && got->has_value());
      EXPECT_EQ((*got)->mod_revision(), num(expect, "revision"));
    } else if (op == "range") {
      range_options ro;
      ro.prefix = str(step, "prefix");
      ro.page_size = static_cast<uint32_t>(num(step, "page_size"));
      auto reader = kv.range(ro);
      std::vector<std::string> keys, values;
      for (;;) {
        auto e = reader.next();
        ASSERT_TRUE(e.ok()) << e.status();
        if (!e->has_value()) break;
        keys.push_back((*e)->key());
        values.push_back((*e)->value());
      }
      std::vector<std::string> want_keys, want_values;
      for (const auto& v : field(expect, "keys")->list_value().values())
        want_keys.push_back(v.string_value());
      for (const auto& v : field(expect, "values")->list_value().values())
        want_values.push_back(v.string_value());
      EXPECT_EQ(keys, want_keys);
      EXPECT_EQ(values, want_values);
      EXPECT_EQ(reader.pages(), num(expect, "pages"));
    } else if (op == "delete_prefix") {
      auto r = kv.remove_prefix(str(step, "prefix"));
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(*r, static_cast<uint64_t>(num(expect, "deleted")));
    } else if (op == "delete") {
      auto r = kv.remove(str(step, "key"));
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->deleted, static_cast<uint64_t>(num(expect, "deleted")));
    } else if (op == "sleep_ms") {
      std::this_thread::sleep_for(std::chrono::milliseconds(num(step, "ms")));
    } else if (op == "watch") {
      watch_options wo;
      wo.key = str(step, "prefix");
      wo.prefix = true;
      wo.from_revision = static_cast<uint64_t>(num(step, "from_revision"));
      auto w = kv.watch(wo);
      std::vector<std::pair<std::string, std::string>> got, want;
      std::vector<uint64_t> revisions;
      for (int64_t i = 0; i < num(step, "count"); ++i) {
        auto e = w.next();
        ASSERT_TRUE(e.ok()) << e.status();
        got.emplace_back(v1::Event::Type_Name(e->type()), e->entry().key());
        revisions.push_back(e->revision());
      }
      std::vector<uint64_t> want_revisions;
      for (const auto& v : field(expect, "events")->list_value().values()) {
        const auto& triple = v.list_value().values();
        want.emplace_back(triple[0].string_value(), triple[1].string_value());
        want_revisions.push_back(static_cast<uint64_t>(triple[2].number_value()));
      }
      EXPECT_EQ(canonical(got), canonical(want));
      EXPECT_EQ(revisions, want_revisions);
    } else {
      FAIL() << "unknown op " << op;
    }
  }
  EXPECT_GT(n, 10);
  EXPECT_EQ(server.terminate(), 0);
}

TEST(client_batch, a_batch_returns_a_result_or_an_error_per_operation) {
  testing::shoald_process server;
  client kv(at(server.address()));
  v1::BatchRequest req;
  req.add_ops()->mutable_put()->set_key("b");
  req.add_ops()->mutable_get()->set_key("b");
  req.add_ops()->mutable_get();  // an empty key
  auto r = kv.batch(req);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->results_size(), 3);
  EXPECT_TRUE(r->results(0).put().applied());
  EXPECT_TRUE(r->results(1).get().found());
  EXPECT_EQ(r->results(2).error().code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
}

TEST(client_errors, the_server_status_reaches_the_caller_and_reads_give_up_when_nobody_answers) {
  testing::shoald_process server;
  client kv(at(server.address()));
  auto bad = kv.put("", "v");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("key"), std::string_view::npos);

  options o = at("127.0.0.1:1");
  o.max_attempts = 2;
  client down(o);
  auto r = down.get("k");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace shoal::client

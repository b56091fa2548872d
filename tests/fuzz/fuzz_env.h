// fuzz_env: a store, its hub and a configuration, in-process, as the handlers see them in
// shoald, for one fuzz input. The clock is paused: TTLs move only when an input advances it.
//
//   shoal::fuzz::env e;                    // a fresh store per input
//   v1::GetResponse resp;
//   auto st = handlers::get(e.ctx, req, resp);
//   e.check_reply(st, resp);               // aborts if an OK reply exceeds the message limit
//
// The limits are small (a 64 KiB message, the least a configuration may set) so that an input
// of a few kilobytes reaches them: values are inflated (inflate_values) rather than spelled out.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "google/protobuf/message.h"
#include "grpcpp/grpcpp.h"
#include "runtime/sync/watch.h"
#include "runtime/time/clock.h"
#include "service/config/config.h"
#include "service/context.h"
#include "service/store/store.h"
#include "service/watch/hub.h"
#include "shoal/v1/kv.pb.h"

namespace shoal::fuzz {

namespace v1 = ::shoal::v1;
namespace config = ::shoal::service::config;
namespace store = ::shoal::service::store;
namespace watch = ::shoal::service::watch;

// Stops the run with a message libFuzzer saves beside the input that caused it.
[[noreturn]] inline void fail(const std::string& why) {
  std::fprintf(stderr, "fuzz invariant broken: %s\n", why.c_str());
  std::abort();
}

// The configuration every input runs with: shoald's defaults, with limits an input can reach.
inline config::snapshot_ptr small_config() {
  v1::ServerConfig c = config::defaults();
  c.mutable_startup()->set_max_message_bytes(64 << 10);
  c.mutable_live()->set_max_key_bytes(256);
  c.mutable_live()->set_max_value_bytes(60 << 10);
  c.mutable_live()->set_max_keys(64);
  c.mutable_live()->set_max_bytes(1 << 20);
  c.mutable_live()->set_max_batch_ops(64);
  c.mutable_live()->set_max_txn_ops(16);
  c.mutable_live()->set_range_page_max_items(32);
  c.mutable_live()->set_range_page_max_bytes(32 << 10);
  if (auto st = config::validate(c); !st.ok()) fail("the fuzz configuration: " + st.ToString());
  auto snap = std::make_shared<config::snapshot>();
  snap->config = std::move(c);
  snap->source = "fuzz";
  return snap;
}

struct env {
  env()
      : cfg(small_config()),
        hub(watch::hub::options{.history_max_events = 256,
                                .history_max_bytes = 1 << 20,
                                .channel_capacity = 16,
                                .channel_max_bytes = 1 << 20}),
        kv(store::store::options{.shards = 4, .clock = &clock, .hub = &hub}),
        channel(rt::watch::channel<config::snapshot_ptr>(cfg)) {
    clock.pause();
    ctx.store_id = "fuzz";
    ctx.hub = &hub;
    ctx.kv = &kv;
    ctx.config = &channel.second;
  }

  std::size_t max_message() const { return cfg->startup().max_message_bytes(); }

  // An OK reply must fit in one message: what the reply budget promises.
  void check_reply(const grpc::Status& st, const google::protobuf::Message& reply) const {
    if (st.ok() && reply.ByteSizeLong() > max_message()) {
      fail("an OK " + reply.GetTypeName() + " of " + std::to_string(reply.ByteSizeLong()) +
           " bytes exceeds startup.max_message_bytes");
    }
    if (!st.ok() && st.error_message().empty()) fail("an error without a message");
    if (st.error_code() == grpc::StatusCode::INTERNAL ||
        st.error_code() == grpc::StatusCode::UNKNOWN) {
      fail("an internal error: " + st.error_message());
    }
  }

  config::snapshot_ptr cfg;
  rt::clock clock;
  watch::hub hub;
  store::store kv;
  std::pair<rt::watch::sender<config::snapshot_ptr>, rt::watch::receiver<config::snapshot_ptr>>
      channel;
  service::context ctx;
};

// A value of `size` bytes that starts with `seed` (a few bytes of the input stand for it).
inline std::string inflate(const std::string& seed, std::size_t size) {
  if (size <= seed.size()) return seed;
  std::string out = seed;
  out.resize(size, seed.empty() ? 'v' : seed.back());
  return out;
}

}  // namespace shoal::fuzz

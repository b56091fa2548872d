#include "clients/cpp/client.h"

#include <cstdlib>
#include <thread>

#include "absl/strings/str_split.h"

#include "clients/cpp/calls.h"
#include "clients/cpp/channel.h"
#include "grpcpp/grpcpp.h"

namespace shoal::client {

absl::Status to_status(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

namespace detail {

v1::PutRequest put_request(std::string_view key, std::string_view value, const put_options& o) {
  v1::PutRequest r;
  r.set_key(key.data(), key.size());
  r.set_value(value.data(), value.size());
  if (o.ttl_ms) r.set_ttl_ms(*o.ttl_ms);
  r.set_keep_ttl(o.keep_ttl);
  if (o.if_absent) r.mutable_condition()->set_if_absent(true);
  if (o.if_present) r.mutable_condition()->set_if_present(true);
  if (o.if_revision != 0) r.mutable_condition()->set_if_mod_revision(o.if_revision);
  r.set_return_previous(o.return_previous);
  return r;
}

put_result put_reply(v1::PutResponse& r) {
  put_result out;
  out.applied = r.applied();
  out.revision = r.applied() ? r.entry().mod_revision() : r.header().revision();
  out.entry = std::move(*r.mutable_entry());
  if (r.has_previous()) out.previous = std::move(*r.mutable_previous());
  return out;
}

v1::DeleteRequest delete_request(std::string_view key, const delete_options& o) {
  v1::DeleteRequest r;
  r.set_key(key.data(), key.size());
  if (o.if_revision != 0) r.mutable_condition()->set_if_mod_revision(o.if_revision);
  r.set_return_previous(o.return_previous);
  return r;
}

delete_result delete_reply(v1::DeleteResponse& r) {
  delete_result out;
  out.applied = r.applied();
  out.deleted = r.deleted();
  out.revision = r.header().revision();
  if (r.previous_size() > 0) out.previous = std::move(*r.mutable_previous(0));
  return out;
}

v1::RangeRequest range_request(const range_options& o, const std::string& continuation) {
  v1::RangeRequest r;
  if (!o.start.empty() || !o.end.empty()) {
    r.mutable_interval()->set_start(o.start);
    r.mutable_interval()->set_end(o.end);
  } else {
    r.set_prefix(o.prefix);
  }
  r.set_limit(o.page_size);
  r.set_keys_only(o.keys_only);
  r.set_continuation(continuation);
  return r;
}

}  // namespace detail

namespace {

std::string resolve_target(const std::string& given) {
  if (!given.empty()) return given;
  if (const char* env = std::getenv("SHOAL_ADDR"); env != nullptr && *env != '\0') return env;
  return "127.0.0.1:50051";
}

// The channel the options ask for; when they cannot be followed, one that fails every call
// (never a plaintext one instead of TLS), with `setup` saying why.
std::shared_ptr<grpc::Channel> channel_or_failing(const options& o, const std::string& target,
                                                  absl::Status* setup) {
  auto ch = make_channel(o, target);
  if (ch.ok()) return *std::move(ch);
  *setup = ch.status();
  grpc::ChannelArguments args;
  return grpc::CreateCustomChannel("unix:/nonexistent/shoal-client-setup-failed",
                                   grpc::InsecureChannelCredentials(), args);
}

}  // namespace

client::client(options o)
    : options_(with_environment(std::move(o))), target_(resolve_target(options_.target)) {
  for (absl::string_view t : absl::StrSplit(target_, ',', absl::SkipWhitespace())) {
    endpoint_for(std::string(t));
  }
  if (endpoints_.empty()) endpoint_for(target_);
}

client::endpoint& client::endpoint_at(std::size_t i) {
  std::lock_guard lock(endpoints_mu_);
  return endpoints_[i];
}

std::size_t client::endpoint_for(const std::string& target) {
  std::lock_guard lock(endpoints_mu_);
  for (std::size_t i = 0; i < endpoints_.size(); ++i) {
    if (endpoints_[i].target == target) return i;
  }
  endpoint e;
  e.target = target;
  absl::Status setup;
  e.channel = channel_or_failing(options_, target, &setup);
  if (!setup.ok() && setup_.ok()) setup_ = setup;
  e.kv = v1::KV::NewStub(e.channel);
  e.admin = v1::Admin::NewStub(e.channel);
  endpoints_.push_back(std::move(e));
  return endpoints_.size() - 1;
}

std::string client::current_target() const {
  std::lock_guard lock(endpoints_mu_);
  return endpoints_[current_.load()].target;
}

namespace {

// A replica's refusal for not leading (nothing applied) names the leader, or is empty while it
// knows none; nullopt: not such a refusal.
std::optional<std::string> leader_hint(const grpc::ClientContext& ctx) {
  const auto& md = ctx.GetServerTrailingMetadata();
  auto it = md.find("shoal-leader");
  if (it == md.end()) return std::nullopt;
  return std::string(it->second.data(), it->second.size());
}

}  // namespace

bool client::never_sent(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE &&
         s.error_message().rfind("failed to connect", 0) == 0;
}

std::size_t client::endpoint_count() const {
  std::lock_guard lock(endpoints_mu_);
  return endpoints_.size();
}

int client::attempts() const {
  return std::max(1, options_.max_attempts) + static_cast<int>(endpoint_count());
}

void client::move_past(std::size_t i) {
  std::size_t expected = i;  // unless another call has moved the client already
  current_.compare_exchange_strong(expected, (i + 1) % endpoint_count());
}

std::chrono::milliseconds client::follow_leader(std::size_t i, const std::string& leader,
                                                int* pauses) {
  if (leader.empty()) {  // an election is on: wait, and ask the next replica
    move_past(i);
    return detail::backoff(options_, (*pauses)++);
  }
  const std::size_t to = endpoint_for(leader);
  std::size_t expected = i;  // another call may have moved the client already: then it stays
  current_.compare_exchange_strong(expected, to);
  if (to == i) return detail::backoff(options_, (*pauses)++);  // it named itself: wait
  return std::chrono::milliseconds(0);
}

std::optional<std::chrono::milliseconds> client::after_unavailable(std::size_t i,
                                                                   const grpc::ClientContext& ctx,
                                                                   const grpc::Status& s, bool read,
                                                                   int* pauses) {
  // Refused for not leading, nothing applied: any call may go to the leader it names.
  if (const auto leader = leader_hint(ctx)) return follow_leader(i, *leader, pauses);
  move_past(i);                                      // this one is down or restarting
  if (!read && !never_sent(s)) return std::nullopt;  // a write that may have been applied
  return detail::backoff(options_, (*pauses)++);
}

grpc::Status client::on_cluster(
    bool read, const std::function<grpc::Status(endpoint&, grpc::ClientContext&)>& call) {
  grpc::Status s;
  int pauses = 0;
  const int tries = attempts();
  for (int attempt = 0; attempt < tries; ++attempt) {
    const std::size_t i = current_.load();
    grpc::ClientContext ctx;
    detail::set_deadline(ctx, options_);
    s = call(endpoint_at(i), ctx);
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE) return s;
    const auto pause = after_unavailable(i, ctx, s, read, &pauses);
    if (!pause) return s;
    if (pause->count() > 0) std::this_thread::sleep_for(*pause);
  }
  return s;
}

absl::StatusOr<std::optional<v1::Entry>> client::get(std::string_view key, const get_options& o) {
  v1::GetRequest req;
  req.set_key(key.data(), key.size());
  req.set_serializable(o.serializable);
  v1::GetResponse resp;
  auto s = on_cluster(
      true, [&](endpoint& e, grpc::ClientContext& ctx) { return e.kv->Get(&ctx, req, &resp); });
  if (!s.ok()) return to_status(s);
  if (!resp.found()) return std::optional<v1::Entry>();
  return std::optional<v1::Entry>(std::move(*resp.mutable_entry()));
}

absl::StatusOr<put_result> client::put(std::string_view key, std::string_view value,
                                       const put_options& o) {
  const v1::PutRequest req = detail::put_request(key, value, o);
  v1::PutResponse resp;
  auto s = on_cluster(
      false, [&](endpoint& e, grpc::ClientContext& ctx) { return e.kv->Put(&ctx, req, &resp); });
  if (!s.ok()) return to_status(s);
  return detail::put_reply(resp);
}

absl::StatusOr<delete_result> client::remove(std::string_view key, const delete_options& o) {
  const v1::DeleteRequest req = detail::delete_request(key, o);
  v1::DeleteResponse resp;
  auto s = on_cluster(
      false, [&](endpoint& e, grpc::ClientContext& ctx) { return e.kv->Delete(&ctx, req, &resp); });
  if (!s.ok()) return to_status(s);
  return detail::delete_reply(resp);
}

absl::StatusOr<uint64_t> client::remove_prefix(std::string_view prefix, bool all_keys) {
  v1::DeleteRequest req;
  req.set_key(prefix.data(), prefix.size());
  req.set_by_prefix(true);
  req.set_all_keys(all_keys);
  v1::DeleteResponse resp;
  auto s = on_cluster(
      false, [&](endpoint& e, grpc::ClientContext& ctx) { return e.kv->Delete(&ctx, req, &resp); });
  if (!s.ok()) return to_status(s);
  return resp.deleted();
}

absl::StatusOr<int64_t> client::increment(std::string_view key, int64_t delta) {
  v1::IncrementRequest req;
  req.set_key(key.data(), key.size());
  req.set_delta(delta);
  v1::IncrementResponse resp;
  auto s = on_cluster(false, [&](endpoint& e, grpc::ClientContext& ctx) {
    return e.kv->Increment(&ctx, req, &resp);
  });
  if (!s.ok()) return to_status(s);
  return resp.value();
}

range_reader client::range(range_options o) { return range_reader(this, std::move(o)); }

watcher client::watch(watch_options o) { return watcher(this, std::move(o)); }

async_watcher client::watch_async(watch_options o) { return async_watcher(this, std::move(o)); }

absl::StatusOr<v1::BatchResponse> client::batch(const v1::BatchRequest& req) {
  v1::BatchResponse resp;
  auto s = on_cluster(
      false, [&](endpoint& e, grpc::ClientContext& ctx) { return e.kv->Batch(&ctx, req, &resp); });
  if (!s.ok()) return to_status(s);
  return resp;
}

absl::StatusOr<v1::TxnResponse> client::txn(const v1::TxnRequest& req) {
  v1::TxnResponse resp;
  auto s = on_cluster(
      false, [&](endpoint& e, grpc::ClientContext& ctx) { return e.kv->Txn(&ctx, req, &resp); });
  if (!s.ok()) return to_status(s);
  return resp;
}

absl::StatusOr<v1::StatusResponse> client::status() {
  v1::StatusRequest req;
  v1::StatusResponse resp;
  auto s = on_cluster(true, [&](endpoint& e, grpc::ClientContext& ctx) {
    return e.admin->Status(&ctx, req, &resp);
  });
  if (!s.ok()) return to_status(s);
  return resp;
}

absl::StatusOr<v1::ServerConfig> client::config() {
  v1::GetConfigRequest req;
  v1::GetConfigResponse resp;
  auto s = on_cluster(true, [&](endpoint& e, grpc::ClientContext& ctx) {
    return e.admin->GetConfig(&ctx, req, &resp);
  });
  if (!s.ok()) return to_status(s);
  return std::move(*resp.mutable_config());
}

absl::StatusOr<std::optional<v1::Entry>> range_reader::next() {
  while (buffered_.empty()) {
    if (done_) return std::optional<v1::Entry>();
    if (auto s = fetch(); !s.ok()) {
      done_ = true;
      return s;
    }
  }
  v1::Entry e = std::move(buffered_.front());
  buffered_.pop_front();
  return std::optional<v1::Entry>(std::move(e));
}

absl::Status range_reader::fetch() {
  const v1::RangeRequest req = detail::range_request(options_, continuation_);
  v1::RangeResponse resp;
  auto s = client_->on_cluster(true, [&](client::endpoint& e, grpc::ClientContext& ctx) {
    return e.kv->Range(&ctx, req, &resp);
  });
  if (!s.ok()) return to_status(s);
  if (pages_++ == 0) revision_ = resp.header().revision();
  for (auto& e : *resp.mutable_entries()) buffered_.push_back(std::move(e));
  continuation_ = resp.continuation();
  done_ = continuation_.empty();
  return absl::OkStatus();
}

}  // namespace shoal::client

#include "clients/cpp/client.h"

#include <cstdlib>

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
    : options_(with_environment(std::move(o))),
      target_(resolve_target(options_.target)),
      channel_(channel_or_failing(options_, target_, &setup_)),
      kv_(v1::KV::NewStub(channel_)),
      admin_(v1::Admin::NewStub(channel_)) {}

absl::StatusOr<std::optional<v1::Entry>> client::get(std::string_view key) {
  v1::GetRequest req;
  req.set_key(key.data(), key.size());
  v1::GetResponse resp;
  auto s = detail::with_retries(
      options_, [&](grpc::ClientContext& ctx) { return kv_->Get(&ctx, req, &resp); });
  if (!s.ok()) return to_status(s);
  if (!resp.found()) return std::optional<v1::Entry>();
  return std::optional<v1::Entry>(std::move(*resp.mutable_entry()));
}

absl::StatusOr<put_result> client::put(std::string_view key, std::string_view value,
                                       const put_options& o) {
  grpc::ClientContext ctx;
  detail::set_deadline(ctx, options_);
  v1::PutResponse resp;
  if (auto s = kv_->Put(&ctx, detail::put_request(key, value, o), &resp); !s.ok()) {
    return to_status(s);
  }
  return detail::put_reply(resp);
}

absl::StatusOr<delete_result> client::remove(std::string_view key, const delete_options& o) {
  grpc::ClientContext ctx;
  detail::set_deadline(ctx, options_);
  v1::DeleteResponse resp;
  if (auto s = kv_->Delete(&ctx, detail::delete_request(key, o), &resp); !s.ok()) {
    return to_status(s);
  }
  return detail::delete_reply(resp);
}

absl::StatusOr<uint64_t> client::remove_prefix(std::string_view prefix, bool all_keys) {
  grpc::ClientContext ctx;
  detail::set_deadline(ctx, options_);
  v1::DeleteRequest req;
  req.set_key(prefix.data(), prefix.size());
  req.set_by_prefix(true);
  req.set_all_keys(all_keys);
  v1::DeleteResponse resp;
  if (auto s = kv_->Delete(&ctx, req, &resp); !s.ok()) return to_status(s);
  return resp.deleted();
}

absl::StatusOr<int64_t> client::increment(std::string_view key, int64_t delta) {
  grpc::ClientContext ctx;
  detail::set_deadline(ctx, options_);
  v1::IncrementRequest req;
  req.set_key(key.data(), key.size());
  req.set_delta(delta);
  v1::IncrementResponse resp;
  if (auto s = kv_->Increment(&ctx, req, &resp); !s.ok()) return to_status(s);
  return resp.value();
}

range_reader client::range(range_options o) { return range_reader(this, std::move(o)); }

watcher client::watch(watch_options o) { return watcher(this, std::move(o)); }

async_watcher client::watch_async(watch_options o) { return async_watcher(this, std::move(o)); }

absl::StatusOr<v1::BatchResponse> client::batch(const v1::BatchRequest& req) {
  grpc::ClientContext ctx;
  detail::set_deadline(ctx, options_);
  v1::BatchResponse resp;
  if (auto s = kv_->Batch(&ctx, req, &resp); !s.ok()) return to_status(s);
  return resp;
}

absl::StatusOr<v1::TxnResponse> client::txn(const v1::TxnRequest& req) {
  grpc::ClientContext ctx;
  detail::set_deadline(ctx, options_);
  v1::TxnResponse resp;
  if (auto s = kv_->Txn(&ctx, req, &resp); !s.ok()) return to_status(s);
  return resp;
}

absl::StatusOr<v1::StatusResponse> client::status() {
  v1::StatusRequest req;
  v1::StatusResponse resp;
  auto s = detail::with_retries(
      options_, [&](grpc::ClientContext& ctx) { return admin_->Status(&ctx, req, &resp); });
  if (!s.ok()) return to_status(s);
  return resp;
}

absl::StatusOr<v1::ServerConfig> client::config() {
  v1::GetConfigRequest req;
  v1::GetConfigResponse resp;
  auto s = detail::with_retries(
      options_, [&](grpc::ClientContext& ctx) { return admin_->GetConfig(&ctx, req, &resp); });
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
  auto s = detail::with_retries(client_->opts(), [&](grpc::ClientContext& ctx) {
    return client_->kv_stub().Range(&ctx, req, &resp);
  });
  if (!s.ok()) return to_status(s);
  if (pages_++ == 0) revision_ = resp.header().revision();
  for (auto& e : *resp.mutable_entries()) buffered_.push_back(std::move(e));
  continuation_ = resp.continuation();
  done_ = continuation_.empty();
  return absl::OkStatus();
}

}  // namespace shoal::client

// calls: what the blocking and the coroutine API share — building requests, reading replies,
// deadlines and the retry policy. Internal to the client library.
#pragma once

#include <algorithm>
#include <chrono>
#include <string_view>
#include <thread>

#include "clients/cpp/client.h"

namespace shoal::client::detail {

v1::PutRequest put_request(std::string_view key, std::string_view value, const put_options& o);
put_result put_reply(v1::PutResponse& r);
v1::DeleteRequest delete_request(std::string_view key, const delete_options& o);
delete_result delete_reply(v1::DeleteResponse& r);
v1::RangeRequest range_request(const range_options& o, const std::string& continuation);

inline void set_deadline(grpc::ClientContext& ctx, const options& o) {
  ctx.set_deadline(std::chrono::system_clock::now() + o.deadline);
}

// Doubles from initial_backoff up to max_backoff.
inline std::chrono::milliseconds backoff(const options& o, int attempt) {
  auto d = o.initial_backoff * (1 << std::min(attempt, 16));
  return std::min<std::chrono::milliseconds>(d, o.max_backoff);
}

// A read is retried on UNAVAILABLE only: the server was not reached or is restarting.
template <class Call>
grpc::Status with_retries(const options& o, Call&& call) {
  grpc::Status s;
  for (int attempt = 0; attempt < std::max(1, o.max_attempts); ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(backoff(o, attempt - 1));
    grpc::ClientContext ctx;
    set_deadline(ctx, o);
    s = call(ctx);
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE) break;
  }
  return s;
}

}  // namespace shoal::client::detail

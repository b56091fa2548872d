#include "service/admission.h"

#include "absl/strings/str_cat.h"
#include "service/metrics/metrics.h"

namespace shoal::service {
namespace {

const char* setting_of(call_class c) {
  switch (c) {
    case call_class::unary:
      return "live.max_in_flight";
    case call_class::stream:
      return "live.max_streams";
    case call_class::control:
      return "live.max_control_calls";
  }
  return "";
}

metrics::event rejection_of(call_class c) {
  switch (c) {
    case call_class::unary:
      return metrics::event::rejected_in_flight;
    case call_class::stream:
      return metrics::event::rejected_streams;
    case call_class::control:
      return metrics::event::rejected_control;
  }
  return metrics::event::rejected_in_flight;
}

const char* noun_of(call_class c) {
  switch (c) {
    case call_class::unary:
      return "calls in flight";
    case call_class::stream:
      return "open streams";
    case call_class::control:
      return "control calls (Status, GetConfig, health Check) in flight";
  }
  return "";
}

}  // namespace

uint32_t admission::limit_of(call_class c, const v1::LiveSettings& live) {
  switch (c) {
    case call_class::unary:
      return live.max_in_flight();
    case call_class::stream:
      return live.max_streams();
    case call_class::control:
      return live.max_control_calls();
  }
  return 0;
}

admission::admission(const v1::LiveSettings& live)
    : lanes_{lane(limit_of(call_class::unary, live)), lane(limit_of(call_class::stream, live)),
             lane(limit_of(call_class::control, live))} {}

grpc::Status admission::admit(call_class c, ticket* out) {
  out->in = calls_.try_enter();
  if (!out->in) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "the server is shutting down; retry on another instance");
  }
  lane& l = lanes_[static_cast<std::size_t>(c)];
  auto permit = l.permits.try_acquire();
  if (!permit) {
    out->in.reset();
    metrics::count(rejection_of(c));
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("the server is at its limit of ", noun_of(c), " (",
                                     setting_of(c), " = ", l.limit, "); retry later"));
  }
  out->permit = std::move(*permit);
  return grpc::Status::OK;
}

void admission::follow(const v1::LiveSettings& live) {
  for (std::size_t i = 0; i < lanes_.size(); ++i) {
    lane& l = lanes_[i];
    const uint32_t next = limit_of(static_cast<call_class>(i), live);
    if (next > l.limit) l.permits.add_permits(next - l.limit);
    if (next < l.limit) l.permits.forget_permits(l.limit - next);
    l.limit = next;
  }
}

}  // namespace shoal::service

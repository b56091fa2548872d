#include "service/admission.h"

#include <array>

#include "absl/strings/str_cat.h"
#include "service/metrics/metrics.h"

namespace shoal::service {
namespace {

// What a class is limited by, and how a refusal names it.
struct class_info {
  uint32_t (v1::LiveSettings::*limit)() const;
  const char* setting;
  const char* noun;
  metrics::event rejected;
};

// Indexed by call_class.
constexpr std::array<class_info, 3> k_classes{{
    {&v1::LiveSettings::max_in_flight, "live.max_in_flight", "calls in flight",
     metrics::event::rejected_in_flight},
    {&v1::LiveSettings::max_streams, "live.max_streams", "open streams",
     metrics::event::rejected_streams},
    {&v1::LiveSettings::max_control_calls, "live.max_control_calls",
     "control calls (Status, GetConfig, health Check) in flight", metrics::event::rejected_control},
}};

const class_info& info(call_class c) { return k_classes[static_cast<std::size_t>(c)]; }

}  // namespace

uint32_t admission::limit_of(call_class c, const v1::LiveSettings& live) {
  return (live.*info(c).limit)();
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
    metrics::count(info(c).rejected);
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("the server is at its limit of ", info(c).noun, " (",
                                     info(c).setting, " = ", l.limit, "); retry later"));
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

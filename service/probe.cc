#include "service/probe.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/resource_quota.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "service/handlers/admin.h"

namespace shoal::service {
namespace {

class reflection_remover : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    const std::string reflection = grpc::reflection::ProtoServerReflectionPlugin().name();
    std::erase_if(*plugins, [&](const auto& p) { return p->name() == reflection; });
  }
};

}  // namespace

std::unique_ptr<grpc::ServerBuilderOption> without_reflection() {
  return std::make_unique<reflection_remover>();
}

// Check, answered by the same function as the main port's; Watch is left unimplemented.
struct probe_server::health : grpc::health::v1::Health::Service {
  explicit health(context* c) : ctx(c) {}
  grpc::Status Check(grpc::ServerContext*, const grpc::health::v1::HealthCheckRequest* req,
                     grpc::health::v1::HealthCheckResponse* resp) override {
    return handlers::health_check(*ctx, *req, *resp);
  }
  context* ctx;
};

absl::StatusOr<std::unique_ptr<probe_server>> probe_server::start(const std::string& listen,
                                                                  context* ctx) {
  std::unique_ptr<probe_server> p(new probe_server());
  p->service_ = std::make_unique<health>(ctx);
  grpc::ServerBuilder builder;
  builder.SetOption(without_reflection());
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(p->service_.get());
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  grpc::ResourceQuota quota("shoald-probes");
  quota.SetMaxThreads(4);  // gRPC's pollers and a call or two: probes come one at a time
  builder.SetResourceQuota(quota);
  p->server_ = builder.BuildAndStart();
  if (!p->server_ || port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", listen,
        " (--probe_listen): the port is in use, or the host is not an address of this machine"));
  }
  p->address_ = absl::StrCat(listen.substr(0, listen.rfind(':')), ":", port);
  return p;
}

probe_server::~probe_server() {
  if (server_) server_->Shutdown(std::chrono::system_clock::now());
}

}  // namespace shoal::service

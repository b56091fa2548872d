#include "clients/cpp/channel.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "clients/cpp/client.h"
#include "grpcpp/support/client_interceptor.h"

namespace shoal::client {
namespace {

namespace ex = grpc::experimental;

// Adds the authorization metadata to each call before its first message goes.
class bearer_interceptor : public ex::Interceptor {
 public:
  explicit bearer_interceptor(const std::string* header) : header_(header) {}
  void Intercept(ex::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            ex::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace("authorization", *header_);
    }
    methods->Proceed();
  }

 private:
  const std::string* header_;
};

class bearer_factory : public ex::ClientInterceptorFactoryInterface {
 public:
  explicit bearer_factory(const std::string& token) : header_("Bearer " + token) {}
  ex::Interceptor* CreateClientInterceptor(ex::ClientRpcInfo*) override {
    return new bearer_interceptor(&header_);
  }

 private:
  const std::string header_;  // lives as long as the channel, which owns the factory
};

void from_env(std::string& setting, const char* name) {
  if (!setting.empty()) return;
  if (const char* v = std::getenv(name); v != nullptr) setting = v;
}

absl::StatusOr<std::string> read_pem(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) return absl::FailedPreconditionError(absl::StrCat("cannot read ", what, " ", path));
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// Whether `target` is this machine: a token may cross that in plaintext.
bool loopback(const std::string& target) {
  if (target.rfind("unix:", 0) == 0) return true;
  const std::string host = target.substr(0, target.rfind(':'));
  return host == "localhost" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials(const options& o,
                                                                      const std::string& target) {
  if (o.cert_file.empty() != o.key_file.empty()) {
    return absl::InvalidArgumentError(
        "a client certificate needs its key: give both (--cert and --key, SHOAL_CERT and "
        "SHOAL_KEY) or neither");
  }
  if (o.ca_file.empty() && o.cert_file.empty()) {
    if (!o.token.empty() && !loopback(target)) {
      return absl::InvalidArgumentError(
          "a token is not sent in plaintext beyond this machine: give the server's CA "
          "(--cacert or SHOAL_CACERT) to use TLS");
    }
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions ssl;
  if (!o.ca_file.empty()) {  // else the system's CAs
    auto ca = read_pem(o.ca_file, "the CA file");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
  }
  if (!o.cert_file.empty()) {
    auto cert = read_pem(o.cert_file, "the client certificate");
    if (!cert.ok()) return cert.status();
    auto key = read_pem(o.key_file, "the client key");
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(cert);
    ssl.pem_private_key = *std::move(key);
  }
  return grpc::SslCredentials(ssl);
}

}  // namespace

options with_environment(options o) {
  from_env(o.ca_file, "SHOAL_CACERT");
  from_env(o.cert_file, "SHOAL_CERT");
  from_env(o.key_file, "SHOAL_KEY");
  from_env(o.token, "SHOAL_TOKEN");
  return o;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> make_channel(const options& o,
                                                            const std::string& target) {
  auto creds = credentials(o, target);
  if (!creds.ok()) return creds.status();
  grpc::ChannelArguments args;
  if (o.token.empty()) return grpc::CreateCustomChannel(target, *creds, args);
  std::vector<std::unique_ptr<ex::ClientInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<bearer_factory>(o.token));
  return ex::CreateCustomChannelWithInterceptors(target, *creds, args, std::move(interceptors));
}

}  // namespace shoal::client

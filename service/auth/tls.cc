#include "service/auth/tls.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "absl/strings/str_cat.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace shoal::service::auth {
namespace {

struct bio_closer {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct x509_closer {
  void operator()(X509* x) const { X509_free(x); }
};
struct key_closer {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using bio_ptr = std::unique_ptr<BIO, bio_closer>;
using x509_ptr = std::unique_ptr<X509, x509_closer>;
using key_ptr = std::unique_ptr<EVP_PKEY, key_closer>;

absl::StatusOr<bio_ptr> open(const char* setting, const std::string& path) {
  bio_ptr b(BIO_new_file(path.c_str(), "r"));
  if (!b) {
    return absl::FailedPreconditionError(absl::StrCat("startup.", setting, ": cannot read ", path));
  }
  return b;
}

// The first certificate of a PEM file, and how many it holds.
absl::StatusOr<x509_ptr> read_certificates(const char* setting, const std::string& path,
                                           int* count) {
  auto b = open(setting, path);
  if (!b.ok()) return b.status();
  x509_ptr first;
  *count = 0;
  while (X509* x = PEM_read_bio_X509(b->get(), nullptr, nullptr, nullptr)) {
    if (!first) {
      first.reset(x);
    } else {
      X509_free(x);
    }
    ++*count;
  }
  if (!first) {
    return absl::FailedPreconditionError(
        absl::StrCat("startup.", setting, ": ", path, " holds no PEM certificate"));
  }
  return first;
}

// The files are what gRPC will read: checked now, so that a mistake stops the start.
absl::Status check_files(const v1::StartupSettings& s) {
  int count = 0;
  auto cert = read_certificates("tls_cert_file", s.tls_cert_file(), &count);
  if (!cert.ok()) return cert.status();
  auto b = open("tls_key_file", s.tls_key_file());
  if (!b.ok()) return b.status();
  key_ptr key(PEM_read_bio_PrivateKey(b->get(), nullptr, nullptr, nullptr));
  if (!key) {
    return absl::FailedPreconditionError(absl::StrCat("startup.tls_key_file: ", s.tls_key_file(),
                                                      " holds no PEM private key (unencrypted)"));
  }
  if (X509_check_private_key(cert->get(), key.get()) != 1) {
    return absl::FailedPreconditionError(absl::StrCat("startup.tls_key_file: ", s.tls_key_file(),
                                                      " is not the key of the certificate in ",
                                                      s.tls_cert_file()));
  }
  if (!s.tls_client_ca_file().empty()) {
    auto ca = read_certificates("tls_client_ca_file", s.tls_client_ca_file(), &count);
    if (!ca.ok()) return ca.status();
  }
  return absl::OkStatus();
}

grpc_ssl_client_certificate_request_type request_type(const std::string& client_auth) {
  if (client_auth == "require") return GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  if (client_auth == "optional") return GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
  return GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> server_credentials(
    const v1::StartupSettings& s) {
  if (!tls_on(s)) return grpc::InsecureServerCredentials();
  if (auto st = check_files(s); !st.ok()) return st;
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      s.tls_key_file(), s.tls_cert_file(), s.tls_client_ca_file(), s.tls_refresh_seconds());
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (!s.tls_client_ca_file().empty()) options.watch_root_certs();
  options.set_cert_request_type(request_type(s.tls_client_auth()));
  auto creds = grpc::experimental::TlsServerCredentials(options);
  if (!creds) return absl::InternalError("gRPC could not make TLS credentials from startup.tls_*");
  return creds;
}

}  // namespace shoal::service::auth

// tls: the gRPC port's credentials from startup.tls_* — plaintext, TLS, or TLS with client
// certificates (mTLS) — with gRPC's file-watching certificate provider, which reads the files
// again every tls_refresh_seconds: a certificate swapped in place (the way the kubelet updates a
// mounted Secret, by renaming a directory link) serves new connections without a restart, and
// connections already open keep theirs.
//
// When: once, as shoald starts (server.cc); the files are checked first, so that a missing file,
// a key that does not match its certificate or a CA file with no certificate stops the start
// with a message naming the setting and the path — never the file's contents.
//
//   auto creds = auth::server_credentials(cfg.startup());   // StatusOr<shared_ptr<...>>
//   if (!creds.ok()) return creds.status();
//   builder.AddListeningPort(listen, *creds, &port);
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "grpcpp/security/server_credentials.h"
#include "shoal/v1/admin.pb.h"

namespace shoal::service::auth {

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> server_credentials(
    const v1::StartupSettings& s);

// Whether the settings turn TLS on.
inline bool tls_on(const v1::StartupSettings& s) { return !s.tls_cert_file().empty(); }

}  // namespace shoal::service::auth

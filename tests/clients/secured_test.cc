// The C++ client against a shoald with TLS and auth on: its ca_file, cert_file, key_file and token
// options, their SHOAL_* variables, and a setup that cannot be followed.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <stdlib.h>

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "clients/cpp/client.h"
#include "tests/clients/client_options.h"
#include "tests/e2e/shoald_process.h"
#include "tests/e2e/test_certs.h"

namespace shoal::client {
namespace {

const std::string k_token = "client-test-token-5d7f9a1c3e5b7d9f";

std::string sha256_hex(const std::string& s) {
  unsigned char d[32];
  unsigned int n = 0;
  EVP_Digest(s.data(), s.size(), d, &n, EVP_sha256(), nullptr);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(d), n));
}

// A shoald serving TLS (client certificates optional) with auth on: `writer` (the token) writes
// app/; `client-one` (a certificate) reads it.
class secured : public ::testing::Test {
 protected:
  secured() {
    testing::write_file(dir + "/ca.crt", ca.certificate());
    testing::write_pem_files(dir, "server",
                             ca.issue({.common_name = "shoald",
                                       .sans = {"IP:127.0.0.1"},
                                       .not_before = -60,
                                       .not_after = 3600}));
    testing::write_pem_files(dir, "client", ca.issue({.common_name = "client-one", .sans = {}}));
    testing::write_file(
        dir + "/auth.json",
        absl::StrCat(R"({"live": {"auth": {"enabled": true, "users": [)",
                     R"({"name": "writer", "tokenSha256": ")", sha256_hex(k_token),
                     R"(", "roles": ["rw"]}, {"name": "client-one", "certificate": true, )",
                     R"("roles": ["ro"]}],)",
                     R"("roles": [{"name": "rw", "permissions": [{"prefix": "app/", )",
                     R"("access": "write"}]}, {"name": "ro", "permissions": [)",
                     R"({"prefix": "app/", "access": "read"}]}]}}})"));
    server = std::make_unique<testing::shoald_process>(std::vector<std::string>{
        "--tls_cert_file=" + dir + "/server.crt", "--tls_key_file=" + dir + "/server.key",
        "--tls_client_ca_file=" + dir + "/ca.crt", "--tls_client_auth=optional",
        "--config=" + dir + "/auth.json"});
  }
  options tls() const {
    options o = at(server->address());
    o.ca_file = dir + "/ca.crt";
    return o;
  }

  std::string dir = testing::temp_dir();
  testing::test_ca ca{"client test CA"};
  std::unique_ptr<testing::shoald_process> server;
};

TEST_F(secured, a_token_over_tls_reaches_every_kind_of_call) {
  options o = tls();
  o.token = k_token;
  client c(o);
  ASSERT_TRUE(c.setup().ok()) << c.setup();
  ASSERT_TRUE(c.put("app/a", "1").ok());
  auto got = c.get("app/a");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)->value(), "1");
  range_options ro;
  ro.prefix = "app/";
  auto r = c.range(ro);
  auto first = r.next();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ((*first)->key(), "app/a");
  // A stream made from the raw stub carries the token too (the channel's interceptor adds it).
  watch_options wo;
  wo.key = "app/";
  wo.prefix = true;
  wo.from_revision = 1;
  auto w = c.watch(wo);
  auto ev = w.next();
  ASSERT_TRUE(ev.ok()) << ev.status();
  EXPECT_EQ(ev->entry().key(), "app/a");
  w.cancel();
  // What the token does not allow is refused.
  EXPECT_EQ(c.put("other", "1").status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(secured, without_a_token_the_server_refuses_and_a_certificate_is_an_identity) {
  client anonymous(tls());
  EXPECT_EQ(anonymous.get("app/a").status().code(), absl::StatusCode::kUnauthenticated);
  options o = tls();
  o.cert_file = dir + "/client.crt";
  o.key_file = dir + "/client.key";
  client one(o);
  EXPECT_TRUE(one.get("app/a").ok());  // client-one reads app/
  EXPECT_EQ(one.put("app/a", "x").status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(secured, the_environment_supplies_what_the_options_leave_empty) {
  ::setenv("SHOAL_CACERT", (dir + "/ca.crt").c_str(), 1);
  ::setenv("SHOAL_TOKEN", k_token.c_str(), 1);
  client c(at(server->address()));
  ::unsetenv("SHOAL_CACERT");
  ::unsetenv("SHOAL_TOKEN");
  EXPECT_TRUE(c.put("app/env", "1").ok());
  EXPECT_EQ(c.opts().token, k_token);
}

TEST_F(secured, files_that_cannot_be_read_fail_the_setup_and_every_call_never_in_plaintext) {
  options o = tls();
  o.ca_file = dir + "/missing.crt";
  o.token = k_token;
  client c(o);
  EXPECT_EQ(c.setup().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(c.setup().message().find("missing.crt"), std::string::npos) << c.setup();
  EXPECT_EQ(c.put("app/a", "1").status().code(), absl::StatusCode::kUnavailable);
  options half = tls();
  half.cert_file = dir + "/client.crt";
  EXPECT_EQ(client(half).setup().code(), absl::StatusCode::kInvalidArgument);
  options key_only = at(server->address());  // no CA, no certificate: not TLS
  key_only.key_file = dir + "/client.key";
  key_only.token = k_token;
  EXPECT_EQ(client(key_only).setup().code(), absl::StatusCode::kInvalidArgument);
  // A token in plaintext goes to this machine only.
  options far = at("192.0.2.1:50051");
  far.token = k_token;
  client refused(far);
  EXPECT_EQ(refused.setup().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.setup().message().find("--cacert"), std::string::npos) << refused.setup();
  options near = at("127.0.0.1:1");
  near.token = k_token;
  EXPECT_TRUE(client(near).setup().ok());
}

}  // namespace
}  // namespace shoal::client

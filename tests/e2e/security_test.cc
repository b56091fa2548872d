// Security: TLS and mTLS on the gRPC port, bearer tokens and client certificates, permissions by
// key prefix, reloads of both, and the audit trail — against a real shoald over real TLS, with
// certificates made by a throwaway CA (test_certs.h).
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "tests/e2e/shoald_process.h"
#include "tests/e2e/test_certs.h"

namespace shoal {
namespace {

using namespace std::chrono_literals;
using testing::ctx;
using testing::eventually;
using testing::pem;
using testing::read_file;
using testing::shoald_process;
using testing::temp_dir;
using testing::test_ca;
using testing::write_file;
namespace health = grpc::health::v1;

const std::string k_root_token = "root-token-3f9a1c7e5b2d4a6f8e0c1b3d5f7a9c2e";
const std::string k_reader_token = "reader-token-8b1d3f5a7c9e2b4d6f8a0c1e3b5d7f9a";
const std::string k_writer_token = "writer-token-1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d";

std::string sha256_hex(const std::string& s) {
  unsigned char d[32];
  unsigned int n = 0;
  EVP_Digest(s.data(), s.size(), d, &n, EVP_sha256(), nullptr);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(d), n));
}

// root: admin on every key; app-reader: read on app/; app-writer: write on app/; client-one (a
// certificate's name, no token): read on app/. `extra_users` are added as they are.
std::string auth_config(const std::string& extra_users = "", bool with_reader = true,
                        const std::string& writer_prefix = "app/") {
  std::string users = absl::StrCat(R"({"name": "root", "tokenSha256": ")", sha256_hex(k_root_token),
                                   R"(", "roles": ["admin"]})");
  if (with_reader) {
    absl::StrAppend(&users, R"(, {"name": "app-reader", "tokenSha256": ")",
                    sha256_hex(k_reader_token), R"(", "roles": ["app-read"]})");
  }
  absl::StrAppend(&users, R"(, {"name": "app-writer", "tokenSha256": ")",
                  sha256_hex(k_writer_token), R"(", "roles": ["app-write"]})",
                  R"(, {"name": "client-one", "certificate": true, "roles": ["app-read"]})",
                  extra_users);
  return absl::StrCat(
      R"({"live": {"auth": {"enabled": true, "users": [)", users, R"(], "roles": [)",
      R"({"name": "admin", "permissions": [{"prefix": "", "access": "admin"}]},)",
      R"({"name": "app-read", "permissions": [{"prefix": "app/", "access": "read"}]},)",
      R"({"name": "app-write", "permissions": [{"prefix": ")", writer_prefix,
      R"(", "access": "write"}]}]}}})");
}

std::unique_ptr<grpc::ClientContext> as(const std::string& token) {
  auto c = ctx();
  if (!token.empty()) c->AddMetadata("authorization", "Bearer " + token);
  return c;
}

// A channel on a connection of its own: TLS trusting `root_pem`, with a client certificate if
// given; plaintext when `root_pem` is empty.
std::shared_ptr<grpc::Channel> connect(const std::string& address, const std::string& root_pem,
                                       const pem* client = nullptr) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  if (root_pem.empty()) {
    return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  }
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = root_pem;
  if (client != nullptr) {
    o.pem_cert_chain = client->certificate;
    o.pem_private_key = client->key;
  }
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(o), args);
}

grpc::Status put(v1::KV::Stub* kv, const std::string& token, const std::string& key,
                 const std::string& value = "v") {
  v1::PutRequest p;
  p.set_key(key);
  p.set_value(value);
  v1::PutResponse r;
  return kv->Put(as(token).get(), p, &r);
}

grpc::Status get(v1::KV::Stub* kv, const std::string& token, const std::string& key,
                 v1::GetResponse* out = nullptr) {
  v1::GetRequest g;
  g.set_key(key);
  v1::GetResponse r;
  return kv->Get(as(token).get(), g, out != nullptr ? out : &r);
}

// A server certificate for 127.0.0.1 (the address clients dial) from `ca`.
pem server_cert(const test_ca& ca, long not_before = -60, long not_after = 3600) {
  return ca.issue({.common_name = "shoald",
                   .sans = {"IP:127.0.0.1", "DNS:localhost"},
                   .not_before = not_before,
                   .not_after = not_after});
}

// The TLS files in a directory laid out as the kubelet mounts a Secret (tls.crt, tls.key and
// ca.crt, links into ..data), so that a test can rotate them as the kubelet does.
struct secret_dir {
  std::string dir = temp_dir();
  int generation = 0;
  void write(const pem& server, const std::string& client_ca) {
    testing::kubelet_swap(
        dir, {{"tls.crt", server.certificate}, {"tls.key", server.key}, {"ca.crt", client_ca}},
        ++generation);
    if (generation == 1) testing::make_kubelet_links(dir, {"tls.crt", "tls.key", "ca.crt"});
  }
  std::vector<std::string> flags(const std::string& client_auth = "off") const {
    std::vector<std::string> f = {"--tls_cert_file=" + dir + "/tls.crt",
                                  "--tls_key_file=" + dir + "/tls.key"};
    if (client_auth != "off") {
      f.push_back("--tls_client_ca_file=" + dir + "/ca.crt");
      f.push_back("--tls_client_auth=" + client_auth);
    }
    return f;
  }
};

// A config file shoald watches, swapped as the kubelet swaps a ConfigMap.
struct config_dir {
  std::string dir = temp_dir();
  int generation = 0;
  explicit config_dir(const std::string& json) {
    write(json);
    testing::make_kubelet_links(dir, {"config.json"});
  }
  void write(const std::string& json) {
    testing::kubelet_swap(dir, {{"config.json", json}}, ++generation);
  }
  std::string flag() const { return "--config=" + dir + "/config.json"; }
};

uint64_t config_version(v1::Admin::Stub* admin) {
  v1::StatusResponse st;
  if (!admin->Status(as(k_root_token).get(), v1::StatusRequest(), &st).ok()) return 0;
  return st.config_version();
}

// ---- TLS ----

TEST(security, tls_serves_calls_to_clients_that_trust_its_ca_and_only_to_them) {
  test_ca ca("Shoal test CA");
  test_ca other("another CA");
  secret_dir secret;
  secret.write(server_cert(ca), ca.certificate());
  shoald_process s(secret.flags());

  auto trusted = v1::KV::NewStub(connect(s.address(), ca.certificate()));
  EXPECT_TRUE(put(trusted.get(), "", "k").ok());

  // A client that trusts another CA fails the handshake; so does one that speaks plaintext.
  const grpc::Status wrong_ca =
      put(v1::KV::NewStub(connect(s.address(), other.certificate())).get(), "", "k");
  EXPECT_EQ(wrong_ca.error_code(), grpc::StatusCode::UNAVAILABLE) << wrong_ca.error_message();
  const grpc::Status plain = put(v1::KV::NewStub(connect(s.address(), "")).get(), "", "k");
  EXPECT_EQ(plain.error_code(), grpc::StatusCode::UNAVAILABLE) << plain.error_message();
}

TEST(security, clients_refuse_an_expired_or_a_not_yet_valid_server_certificate) {
  test_ca ca("Shoal test CA");
  for (const auto& [name, cert] : {std::pair{"expired", server_cert(ca, -7200, -3600)},
                                   std::pair{"not yet valid", server_cert(ca, 3600, 7200)}}) {
    secret_dir secret;
    secret.write(cert, ca.certificate());
    shoald_process s(secret.flags());
    const grpc::Status st =
        put(v1::KV::NewStub(connect(s.address(), ca.certificate())).get(), "", "k");
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << name << ": " << st.error_message();
  }
}

TEST(security, mtls_require_refuses_every_client_without_a_valid_certificate_from_its_ca) {
  test_ca ca("Shoal test CA");
  test_ca other("another CA");
  secret_dir secret;
  secret.write(server_cert(ca), ca.certificate());
  shoald_process s(secret.flags("require"));

  const pem good = ca.issue({.common_name = "client-one", .sans = {}});
  EXPECT_TRUE(
      put(v1::KV::NewStub(connect(s.address(), ca.certificate(), &good)).get(), "", "k").ok());
  const pem foreign = other.issue({.common_name = "client-one", .sans = {}});
  const pem expired =
      ca.issue({.common_name = "client-one", .sans = {}, .not_before = -7200, .not_after = -60});
  const pem future =
      ca.issue({.common_name = "client-one", .sans = {}, .not_before = 3600, .not_after = 7200});
  for (const auto& [name, client] :
       {std::pair<const char*, const pem*>{"no certificate", nullptr},
        std::pair<const char*, const pem*>{"another CA's", &foreign},
        std::pair<const char*, const pem*>{"expired", &expired},
        std::pair<const char*, const pem*>{"not yet valid", &future}}) {
    const grpc::Status st =
        put(v1::KV::NewStub(connect(s.address(), ca.certificate(), client)).get(), "", "k");
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << name << ": " << st.error_message();
  }
}

TEST(security, shoald_refuses_to_start_on_tls_files_it_cannot_use_and_never_prints_them) {
  test_ca ca("Shoal test CA");
  const std::string dir = temp_dir();
  const pem a = server_cert(ca);
  const pem b = server_cert(ca);
  testing::write_pem_files(dir, "a", a);
  testing::write_pem_files(dir, "b", b);
  const std::string cert = "--tls_cert_file=" + dir + "/a.crt";
  const struct {
    std::string args;
    std::string says;
  } cases[] = {
      {cert + " --tls_key_file=" + dir + "/b.key", "is not the key of the certificate"},
      {cert + " --tls_key_file=" + dir + "/missing.key", "cannot read"},
      {cert + " --tls_key_file=" + dir + "/a.crt", "holds no PEM private key"},
      {"--tls_cert_file=" + dir + "/a.key --tls_key_file=" + dir + "/a.key", "no PEM certificate"},
      {cert, "go together"},
      {cert + " --tls_key_file=" + dir + "/a.key --tls_client_auth=require",
       "needs startup.tls_client_ca_file"},
  };
  for (const auto& c : cases) {
    const auto [code, out] = testing::run_to_exit(c.args);
    EXPECT_EQ(code, 2) << c.args << "\n" << out;
    EXPECT_NE(out.find(c.says), std::string::npos) << c.args << "\n" << out;
    EXPECT_EQ(out.find("BEGIN"), std::string::npos) << out;  // no PEM content
  }
}

TEST(security, probes_without_tls_or_credentials_check_health_on_a_port_of_their_own) {
  test_ca ca("Shoal test CA");
  secret_dir secret;
  secret.write(server_cert(ca), ca.certificate());
  config_dir cfg(auth_config());
  std::vector<std::string> flags = secret.flags("require");
  flags.push_back(cfg.flag());
  flags.push_back("--probe_listen=127.0.0.1:0");
  shoald_process s(flags);
  ASSERT_FALSE(s.probe_address().empty());
  auto plain = connect(s.probe_address(), "");
  for (const char* service : {"", "shoal.v1.KV"}) {
    health::HealthCheckRequest req;
    req.set_service(service);
    health::HealthCheckResponse resp;
    const grpc::Status st = health::Health::NewStub(plain)->Check(ctx().get(), req, &resp);
    ASSERT_TRUE(st.ok()) << service << ": " << st.error_message();
    EXPECT_EQ(resp.status(), health::HealthCheckResponse::SERVING) << service;
  }
  // Nothing else is served there, with or without a token.
  EXPECT_EQ(get(v1::KV::NewStub(plain).get(), k_root_token, "app/x").error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(plain);
  auto c = ctx();
  auto stream = stub->ServerReflectionInfo(c.get());
  stream->WritesDone();
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

// ---- Tokens ----

TEST(security, without_good_credentials_every_call_but_health_is_unauthenticated) {
  config_dir cfg(auth_config());
  shoald_process s({cfg.flag()});
  auto kv = s.kv();
  EXPECT_TRUE(put(kv.get(), k_root_token, "app/x").ok());

  struct attempt {
    const char* what;
    std::string header;  // the authorization metadata; empty: none
  };
  for (const attempt& a :
       {attempt{"missing", ""}, attempt{"malformed", "Basic cm9vdDpyb290"},
        attempt{"no token", "Bearer "}, attempt{"wrong", "Bearer " + k_root_token + "x"},
        attempt{"a hash for a token", "Bearer " + sha256_hex(k_root_token)}}) {
    auto c = ctx();
    if (!a.header.empty()) c->AddMetadata("authorization", a.header);
    v1::GetRequest g;
    g.set_key("app/x");
    v1::GetResponse r;
    const grpc::Status st = kv->Get(c.get(), g, &r);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << a.what;
    EXPECT_EQ(st.error_message().find(k_root_token), std::string::npos) << st.error_message();
    EXPECT_FALSE(r.found());
  }
  // Two authorization entries are refused, even if one is good.
  auto two = ctx();
  two->AddMetadata("authorization", "Bearer " + k_root_token);
  two->AddMetadata("authorization", "Bearer " + k_reader_token);
  v1::GetRequest g;
  g.set_key("app/x");
  v1::GetResponse r;
  EXPECT_EQ(kv->Get(two.get(), g, &r).error_code(), grpc::StatusCode::UNAUTHENTICATED);

  // Probes carry no credentials: health stays open.
  health::HealthCheckRequest hreq;
  hreq.set_service("shoal.v1.KV");
  health::HealthCheckResponse hresp;
  ASSERT_TRUE(s.health()->Check(ctx().get(), hreq, &hresp).ok());
  EXPECT_EQ(hresp.status(), health::HealthCheckResponse::SERVING);

  // Streams too: a Watch and a Pipeline without credentials end at once.
  auto wc = ctx();
  v1::WatchRequest wr;
  wr.set_key("app/");
  wr.set_prefix(true);
  auto w = kv->Watch(wc.get(), wr);
  v1::WatchResponse wresp;
  EXPECT_FALSE(w->Read(&wresp));
  EXPECT_EQ(w->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  auto pc = ctx();
  auto p = kv->Pipeline(pc.get());
  v1::PipelineRequest preq;
  preq.set_id(1);
  *preq.mutable_op()->mutable_get() = g;
  p->Write(preq);
  p->WritesDone();
  v1::PipelineResponse presp;
  EXPECT_FALSE(p->Read(&presp));
  EXPECT_EQ(p->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST(security, a_read_role_on_a_prefix_is_held_to_that_prefix_in_every_method) {
  config_dir cfg(auth_config());
  shoald_process s({cfg.flag()});
  auto kv = s.kv();
  ASSERT_TRUE(put(kv.get(), k_root_token, "app/x", "1").ok());
  ASSERT_TRUE(put(kv.get(), k_root_token, "b", "2").ok());
  const auto denied = grpc::StatusCode::PERMISSION_DENIED;

  // Reads inside app/ are allowed; Put on app/x is not.
  v1::GetResponse got;
  ASSERT_TRUE(get(kv.get(), k_reader_token, "app/x", &got).ok());
  EXPECT_EQ(got.entry().value(), "1");
  const grpc::Status w = put(kv.get(), k_reader_token, "app/x", "changed");
  EXPECT_EQ(w.error_code(), denied);
  EXPECT_NE(w.error_message().find("app-reader"), std::string::npos) << w.error_message();
  EXPECT_EQ(w.error_message().find("changed"), std::string::npos) << "a value in a message";
  EXPECT_EQ(get(kv.get(), k_reader_token, "b").error_code(), denied);

  // A Range by prefix app/ is allowed; from app/ to b reaches past it: refused, not clipped.
  v1::RangeRequest in;
  in.set_prefix("app/");
  v1::RangeResponse rr;
  ASSERT_TRUE(kv->Range(as(k_reader_token).get(), in, &rr).ok());
  EXPECT_EQ(rr.entries_size(), 1);
  v1::RangeRequest past;
  past.mutable_interval()->set_start("app/");
  past.mutable_interval()->set_end("b");
  EXPECT_EQ(kv->Range(as(k_reader_token).get(), past, &rr).error_code(), denied);
  v1::RangeRequest within;  // [app/a, app/z) lies inside app/
  within.mutable_interval()->set_start("app/a");
  within.mutable_interval()->set_end("app/z");
  EXPECT_TRUE(kv->Range(as(k_reader_token).get(), within, &rr).ok());

  // Watch on the empty prefix: refused at start.
  {
    auto c = as(k_reader_token);
    v1::WatchRequest wr;
    wr.set_prefix(true);
    auto stream = kv->Watch(c.get(), wr);
    v1::WatchResponse resp;
    EXPECT_FALSE(stream->Read(&resp));
    EXPECT_EQ(stream->Finish().error_code(), denied);
  }

  // A Txn whose failure branch writes outside app/ is refused whole, though only its success
  // branch (a read) would run.
  v1::TxnRequest txn;
  auto* cmp = txn.add_compares();
  cmp->set_key("app/x");
  cmp->set_target(v1::Compare::VALUE);
  cmp->set_value("1");
  txn.add_success()->mutable_get()->set_key("app/x");
  auto* out = txn.add_failure()->mutable_put();
  out->set_key("elsewhere");
  out->set_value("v");
  v1::TxnResponse tr;
  EXPECT_EQ(kv->Txn(as(k_reader_token).get(), txn, &tr).error_code(), denied);

  // A Batch mixing allowed and denied operations is refused whole: nothing of it runs.
  v1::BatchRequest batch;
  auto* ok_put = batch.add_ops()->mutable_put();
  ok_put->set_key("app/new");
  ok_put->set_value("v");
  auto* bad_put = batch.add_ops()->mutable_put();
  bad_put->set_key("other/new");
  bad_put->set_value("v");
  v1::BatchResponse br;
  EXPECT_EQ(kv->Batch(as(k_writer_token).get(), batch, &br).error_code(), denied);
  v1::GetResponse gone;
  ASSERT_TRUE(get(kv.get(), k_root_token, "app/new", &gone).ok());
  EXPECT_FALSE(gone.found()) << "a refused Batch ran in part";

  // Increment and Delete need write; a prefix Delete needs write on the whole prefix.
  v1::IncrementRequest inc;
  inc.set_key("app/n");
  v1::IncrementResponse ir;
  EXPECT_EQ(kv->Increment(as(k_reader_token).get(), inc, &ir).error_code(), denied);
  EXPECT_TRUE(kv->Increment(as(k_writer_token).get(), inc, &ir).ok());
  v1::DeleteRequest del;
  del.set_key("");
  del.set_by_prefix(true);
  del.set_all_keys(true);
  v1::DeleteResponse dr;
  EXPECT_EQ(kv->Delete(as(k_writer_token).get(), del, &dr).error_code(), denied);
  del.set_key("app/");
  del.set_all_keys(false);
  EXPECT_TRUE(kv->Delete(as(k_writer_token).get(), del, &dr).ok());

  // The Admin service needs admin on every key.
  v1::StatusResponse st;
  EXPECT_EQ(s.admin()->Status(as(k_writer_token).get(), v1::StatusRequest(), &st).error_code(),
            denied);
  ASSERT_TRUE(s.admin()->Status(as(k_root_token).get(), v1::StatusRequest(), &st).ok());
  // GetConfig shows the rules, not the token hashes.
  v1::GetConfigResponse gc;
  ASSERT_TRUE(s.admin()->GetConfig(as(k_root_token).get(), v1::GetConfigRequest(), &gc).ok());
  ASSERT_GT(gc.config().live().auth().users_size(), 0);
  EXPECT_EQ(gc.config().live().auth().users(0).token_sha256(), "(set)");
}

TEST(security, a_pipeline_checks_each_request_and_answers_a_denied_one_with_its_error) {
  config_dir cfg(auth_config());
  shoald_process s({cfg.flag()});
  auto kv = s.kv();
  auto c = as(k_writer_token);
  auto p = kv->Pipeline(c.get());
  auto op_put = [](uint64_t id, const std::string& key) {
    v1::PipelineRequest r;
    r.set_id(id);
    auto* put = r.mutable_op()->mutable_put();
    put->set_key(key);
    put->set_value("v");
    return r;
  };
  ASSERT_TRUE(p->Write(op_put(1, "app/a")));
  ASSERT_TRUE(p->Write(op_put(2, "secret/a")));
  v1::PipelineRequest mixed;  // a Batch with one denied operation: refused whole
  mixed.set_id(3);
  *mixed.mutable_batch()->add_ops() = op_put(0, "app/b").op();
  *mixed.mutable_batch()->add_ops() = op_put(0, "secret/b").op();
  ASSERT_TRUE(p->Write(mixed));
  ASSERT_TRUE(p->Write(op_put(4, "app/c")));
  p->WritesDone();
  std::vector<v1::PipelineResponse> replies;
  for (v1::PipelineResponse r; p->Read(&r);) replies.push_back(r);
  ASSERT_TRUE(p->Finish().ok());
  ASSERT_EQ(replies.size(), 4u);
  EXPECT_TRUE(replies[0].result().put().applied());
  EXPECT_EQ(replies[1].result().error().code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(replies[2].error().code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(replies[3].result().put().applied());
  v1::GetResponse r;
  ASSERT_TRUE(get(kv.get(), k_root_token, "app/b", &r).ok());
  EXPECT_FALSE(r.found());
}

TEST(security, each_refusal_is_audited_and_counted_without_values_or_tokens) {
  const std::string log = temp_dir() + "/shoald.log";
  config_dir cfg(auth_config());
  shoald_process s(shoald_process::stderr_file{log}, {cfg.flag()});
  auto kv = s.kv();
  EXPECT_EQ(put(kv.get(), k_reader_token, "app/audited", "a-value-never-logged").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(put(kv.get(), k_reader_token + "x", "app/y").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  ASSERT_TRUE(eventually([&] {
    const std::string text = read_file(log);
    return text.find("permission denied") != std::string::npos &&
           text.find("unauthenticated") != std::string::npos;
  }));
  const std::string text = read_file(log);
  const std::size_t line_at = text.find("call refused: permission denied");
  const std::string line = text.substr(line_at, text.find('\n', line_at) - line_at);
  EXPECT_NE(line.find("user=\"app-reader\""), std::string::npos) << line;
  EXPECT_NE(line.find("shoal.v1.KV/Put"), std::string::npos) << line;
  EXPECT_NE(line.find("app/audited"), std::string::npos) << line;
  EXPECT_EQ(text.find("a-value-never-logged"), std::string::npos) << text;
  EXPECT_EQ(text.find(k_reader_token), std::string::npos) << text;
  EXPECT_EQ(text.find(sha256_hex(k_reader_token)), std::string::npos) << text;
  const std::string metrics = testing::scrape(s.metrics_address());
  EXPECT_EQ(testing::sample(metrics, R"(shoal_auth_refused_total{reason="permission_denied"})"), 1);
  EXPECT_EQ(testing::sample(metrics, R"(shoal_auth_refused_total{reason="unauthenticated"})"), 1);
}

TEST(security, shoald_warns_when_it_listens_beyond_loopback_without_auth) {
  const std::string dir = temp_dir();
  const std::string warning = "listening beyond loopback without auth";
  {
    shoald_process open(shoald_process::stderr_file{dir + "/open.log"}, {"--listen=0.0.0.0:0"});
    EXPECT_TRUE(eventually(
        [&] { return read_file(dir + "/open.log").find("shoald started") != std::string::npos; }));
    EXPECT_NE(read_file(dir + "/open.log").find(warning), std::string::npos);
  }
  config_dir cfg(auth_config());
  shoald_process guarded(shoald_process::stderr_file{dir + "/guarded.log"},
                         {"--listen=0.0.0.0:0", cfg.flag()});
  EXPECT_TRUE(eventually(
      [&] { return read_file(dir + "/guarded.log").find("shoald started") != std::string::npos; }));
  EXPECT_EQ(read_file(dir + "/guarded.log").find(warning), std::string::npos);
  shoald_process loopback(shoald_process::stderr_file{dir + "/loopback.log"}, {});
  EXPECT_TRUE(eventually([&] {
    return read_file(dir + "/loopback.log").find("shoald started") != std::string::npos;
  }));
  EXPECT_EQ(read_file(dir + "/loopback.log").find(warning), std::string::npos);
}

TEST(security, reflection_is_not_served_when_auth_is_on_at_start) {
  config_dir cfg(auth_config());
  shoald_process s({cfg.flag()});
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(s.channel());
  auto c = as(k_root_token);
  auto stream = stub->ServerReflectionInfo(c.get());
  grpc::reflection::v1alpha::ServerReflectionRequest list;
  list.set_list_services("");
  stream->Write(list);
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse resp;
  EXPECT_FALSE(stream->Read(&resp));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

// ---- Client certificates as identities ----

TEST(security, a_client_certificate_names_its_user_and_a_token_sent_beside_it_decides) {
  test_ca ca("Shoal test CA");
  secret_dir secret;
  secret.write(server_cert(ca), ca.certificate());
  config_dir cfg(auth_config());
  std::vector<std::string> flags = secret.flags("optional");
  flags.push_back(cfg.flag());
  shoald_process s(flags);
  ASSERT_TRUE(
      put(v1::KV::NewStub(connect(s.address(), ca.certificate())).get(), k_root_token, "app/x")
          .ok());

  const pem one = ca.issue({.common_name = "client-one", .sans = {}});
  auto kv = v1::KV::NewStub(connect(s.address(), ca.certificate(), &one));
  EXPECT_TRUE(get(kv.get(), "", "app/x").ok());  // client-one reads app/
  EXPECT_EQ(put(kv.get(), "", "app/x").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  // A token sent beside the certificate decides, a wrong one included.
  EXPECT_TRUE(put(kv.get(), k_writer_token, "app/x").ok());
  EXPECT_EQ(get(kv.get(), k_writer_token + "x", "app/x").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  // A SAN names the user as well as the CN does.
  const pem by_san = ca.issue({.common_name = "nobody", .sans = {"DNS:client-one"}});
  EXPECT_TRUE(
      get(v1::KV::NewStub(connect(s.address(), ca.certificate(), &by_san)).get(), "", "app/x")
          .ok());
  // A certificate with SANs is not named by its CN; a token user is no certificate's.
  const pem cn_only_counts_without_sans =
      ca.issue({.common_name = "client-one", .sans = {"DNS:somewhere.else"}});
  EXPECT_EQ(
      get(v1::KV::NewStub(connect(s.address(), ca.certificate(), &cn_only_counts_without_sans))
              .get(),
          "", "app/x")
          .error_code(),
      grpc::StatusCode::UNAUTHENTICATED);
  const pem as_root = ca.issue({.common_name = "root", .sans = {}});
  EXPECT_EQ(
      get(v1::KV::NewStub(connect(s.address(), ca.certificate(), &as_root)).get(), "", "app/x")
          .error_code(),
      grpc::StatusCode::UNAUTHENTICATED);
  // A certificate that names no user, and no certificate at all (optional), are unauthenticated.
  const pem stranger = ca.issue({.common_name = "stranger", .sans = {}});
  const grpc::Status st =
      get(v1::KV::NewStub(connect(s.address(), ca.certificate(), &stranger)).get(), "", "app/x");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(st.error_message().find("stranger"), std::string::npos) << st.error_message();
  EXPECT_EQ(
      get(v1::KV::NewStub(connect(s.address(), ca.certificate())).get(), "", "app/x").error_code(),
      grpc::StatusCode::UNAUTHENTICATED);
}

// ---- Reloads ----

TEST(security, a_revoked_token_is_refused_and_its_open_watch_ends_at_the_reload) {
  config_dir cfg(auth_config());
  shoald_process s({cfg.flag()});
  auto kv = s.kv();
  auto admin = s.admin();
  const uint64_t v1_ = config_version(admin.get());

  // The reader watches app/ from the first revision (the put below), so that it sees the put
  // whether its stream opens before it or after.
  auto rc = as(k_reader_token);
  v1::WatchRequest wr;
  wr.set_key("app/");
  wr.set_prefix(true);
  wr.set_start_revision(1);
  auto reader_watch = kv->Watch(rc.get(), wr);
  ASSERT_TRUE(put(kv.get(), k_root_token, "app/1").ok());
  v1::WatchResponse resp;
  ASSERT_TRUE(reader_watch->Read(&resp));
  ASSERT_EQ(resp.events_size(), 1);

  // The reader is removed.
  cfg.write(auth_config("", /*with_reader=*/false));
  ASSERT_TRUE(eventually([&] { return config_version(admin.get()) > v1_; }));
  // Its watch ends with PERMISSION_DENIED, after a last response that says why; events after
  // the reload never reach it.
  ASSERT_TRUE(put(kv.get(), k_root_token, "app/2").ok());
  bool saw_second = false;
  bool canceled = false;
  while (reader_watch->Read(&resp)) {
    for (const auto& e : resp.events()) saw_second |= e.entry().key() == "app/2";
    canceled |= resp.canceled();
  }
  EXPECT_EQ(reader_watch->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(canceled);
  EXPECT_FALSE(saw_second);
  EXPECT_EQ(get(kv.get(), k_reader_token, "app/1").error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST(security, auth_turned_on_by_a_reload_applies_to_the_next_call_and_to_open_watches) {
  config_dir cfg(R"({"live": {"logLevel": "info"}})");
  shoald_process s({cfg.flag()});
  auto kv = s.kv();
  ASSERT_TRUE(put(kv.get(), "", "app/1").ok());  // open: no credentials needed
  auto wc = ctx();
  v1::WatchRequest wr;
  wr.set_key("app/");
  wr.set_prefix(true);
  wr.set_start_revision(1);
  auto w = kv->Watch(wc.get(), wr);  // an anonymous watch, allowed while auth is off
  v1::WatchResponse resp;
  ASSERT_TRUE(w->Read(&resp));
  cfg.write(auth_config());
  // Once the new configuration is in force (Status with the root token answers), a call without
  // credentials is refused, and the anonymous watch has ended.
  ASSERT_TRUE(eventually([&] { return config_version(s.admin().get()) == 2; }));
  EXPECT_EQ(put(kv.get(), "", "app/2").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  while (w->Read(&resp)) {
    for (const auto& e : resp.events()) EXPECT_NE(e.entry().key(), "app/2");
  }
  EXPECT_EQ(w->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST(security, a_watch_ends_when_a_reload_narrows_its_callers_permission) {
  config_dir cfg(auth_config());
  shoald_process s({cfg.flag()});
  auto kv = s.kv();
  auto admin = s.admin();
  const uint64_t before = config_version(admin.get());
  auto wc = as(k_writer_token);
  v1::WatchRequest wr;
  wr.set_key("app/");
  wr.set_prefix(true);
  wr.set_start_revision(1);  // the put below, however late the stream opens
  auto w = kv->Watch(wc.get(), wr);
  // A reload that keeps the writer's app/: the watch goes on.
  cfg.write(auth_config(R"(, {"name": "someone", "certificate": true, "roles": ["app-read"]})"));
  ASSERT_TRUE(eventually([&] { return config_version(admin.get()) == before + 1; }));
  ASSERT_TRUE(put(kv.get(), k_root_token, "app/1").ok());
  v1::WatchResponse resp;
  ASSERT_TRUE(w->Read(&resp));
  EXPECT_EQ(resp.events_size(), 1);
  // One that moves it to app/sub/: the watch of app/ ends.
  cfg.write(auth_config("", true, "app/sub/"));
  while (w->Read(&resp)) {
  }
  EXPECT_EQ(w->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST(security, permission_reloads_under_load_fail_no_call_that_should_succeed) {
  config_dir cfg(auth_config());
  shoald_process s({cfg.flag()});
  auto admin = s.admin();
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> ok{0};
  std::atomic<uint64_t> failed{0};
  std::string first_failure;
  std::mutex mu;
  std::vector<std::thread> load;
  for (int t = 0; t < 4; ++t) {
    load.emplace_back([&, t] {
      auto kv = v1::KV::NewStub(s.new_connection());
      for (uint64_t i = 0; !stop.load(); ++i) {
        const std::string key = absl::StrCat("app/", t, "/", i % 100);
        const grpc::Status st =
            t % 2 == 0 ? put(kv.get(), k_writer_token, key) : get(kv.get(), k_reader_token, key);
        if (st.ok()) {
          ok.fetch_add(1);
        } else if (failed.fetch_add(1) == 0) {
          std::lock_guard lock(mu);
          first_failure = st.error_message();
        }
      }
    });
  }
  // Ten reloads that change other users and roles, each waited for.
  for (int i = 0; i < 10; ++i) {
    const uint64_t before = config_version(admin.get());
    cfg.write(auth_config(absl::StrCat(R"(, {"name": "temp-)", i, R"(", "tokenSha256": ")",
                                       sha256_hex(absl::StrCat("t", i)),
                                       R"(", "roles": ["app-read"]})")));
    ASSERT_TRUE(eventually([&] { return config_version(admin.get()) > before; }));
  }
  stop = true;
  for (auto& t : load) t.join();
  EXPECT_EQ(failed.load(), 0u) << first_failure;
  EXPECT_GT(ok.load(), 100u);
}

TEST(security, a_rotated_certificate_serves_new_connections_and_cuts_no_call_in_flight) {
  test_ca old_ca("old CA");
  test_ca new_ca("new CA");
  secret_dir secret;
  secret.write(server_cert(old_ca), old_ca.certificate());
  std::vector<std::string> flags = secret.flags();
  flags.push_back("--tls_refresh_seconds=1");
  shoald_process s(flags);

  auto channel = connect(s.address(), old_ca.certificate());
  auto kv = v1::KV::NewStub(channel);
  v1::PutRequest first;
  first.set_key("k");
  first.set_value("v");
  v1::PutResponse first_reply;
  ASSERT_TRUE(kv->Put(ctx().get(), first, &first_reply).ok());
  // A watch open across the rotation (from the revision after that put: it sees the write to
  // "after" however late its stream opens), and writers on the same connection throughout.
  auto wc = std::make_unique<grpc::ClientContext>();
  wc->set_deadline(std::chrono::system_clock::now() + 60s);
  v1::WatchRequest wr;
  wr.set_key("after");
  wr.set_start_revision(first_reply.header().revision() + 1);
  auto watch = kv->Watch(wc.get(), wr);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> failed{0};
  std::atomic<uint64_t> done{0};
  std::vector<std::thread> load;
  for (int t = 0; t < 2; ++t) {
    load.emplace_back([&, t] {
      for (uint64_t i = 0; !stop.load(); ++i) {
        if (put(kv.get(), "", absl::StrCat("load/", t, "/", i % 50)).ok()) {
          done.fetch_add(1);
        } else {
          failed.fetch_add(1);
        }
      }
    });
  }

  secret.write(server_cert(new_ca), new_ca.certificate());
  // New connections get the new certificate: a client that trusts only the new CA gets in.
  EXPECT_TRUE(eventually(
      [&] {
        return put(v1::KV::NewStub(connect(s.address(), new_ca.certificate())).get(), "", "n").ok();
      },
      15s));
  EXPECT_EQ(
      put(v1::KV::NewStub(connect(s.address(), old_ca.certificate())).get(), "", "n").error_code(),
      grpc::StatusCode::UNAVAILABLE);
  // The open connection still serves, and the watch still delivers.
  ASSERT_TRUE(put(kv.get(), "", "after", "x").ok());
  v1::WatchResponse resp;
  ASSERT_TRUE(watch->Read(&resp));
  ASSERT_EQ(resp.events_size(), 1);
  EXPECT_EQ(resp.events(0).entry().value(), "x");
  stop = true;
  for (auto& t : load) t.join();
  EXPECT_EQ(failed.load(), 0u);
  EXPECT_GT(done.load(), 0u);
  wc->TryCancel();
}

}  // namespace
}  // namespace shoal

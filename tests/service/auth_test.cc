// The auth rules: permissions as intervals of the key space, the policy built from live.auth,
// the bearer token parser, and what each request needs.
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/escaping.h"
#include "service/auth/check.h"
#include "service/auth/credentials.h"
#include "service/auth/permissions.h"
#include "service/auth/policy.h"
#include "service/config/config.h"

namespace shoal::service::auth {
namespace {

std::string hex(const digest& d) {
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

permissions sealed(std::initializer_list<std::pair<access, std::string>> grants) {
  permissions p;
  for (const auto& [a, prefix] : grants) p.grant(a, prefix);
  p.seal();
  return p;
}

TEST(auth_permissions, a_prefix_grant_covers_its_keys_and_nothing_past_them) {
  const permissions p = sealed({{access::read, "app/"}});
  EXPECT_TRUE(p.allows(access::read, keys::one("app/")));
  EXPECT_TRUE(p.allows(access::read, keys::one("app/x")));
  EXPECT_FALSE(p.allows(access::read, keys::one("app")));
  EXPECT_FALSE(p.allows(access::read, keys::one("app0")));  // '0' follows '/'
  EXPECT_FALSE(p.allows(access::read, keys::one("b")));
  EXPECT_TRUE(p.allows(access::read, keys::prefix("app/")));
  EXPECT_TRUE(p.allows(access::read, keys::prefix("app/sub/")));
  EXPECT_FALSE(p.allows(access::read, keys::prefix("app")));
  EXPECT_FALSE(p.allows(access::read, keys::all()));
  EXPECT_TRUE(p.allows(access::read, keys::interval("app/a", "app/z")));
  EXPECT_TRUE(p.allows(access::read, keys::interval("app/", "app0")));  // exactly the prefix
  EXPECT_FALSE(p.allows(access::read, keys::interval("app/", "b")));
  EXPECT_FALSE(p.allows(access::read, keys::interval("app/", "")));  // no upper bound
  EXPECT_FALSE(p.allows(access::write, keys::one("app/x")));
}

TEST(auth_permissions, levels_include_the_ones_below_and_grants_add_up) {
  const permissions p = sealed({{access::write, "a"}, {access::read, "b"}, {access::admin, "c/"}});
  EXPECT_TRUE(p.allows(access::read, keys::one("a1")));
  EXPECT_TRUE(p.allows(access::write, keys::one("a1")));
  EXPECT_FALSE(p.allows(access::admin, keys::one("a1")));
  // Read on "a" (from write) and on "b" meet: [a, c) is covered whole.
  EXPECT_TRUE(p.allows(access::read, keys::interval("a", "c")));
  EXPECT_FALSE(p.allows(access::read, keys::interval("a", "c/")));  // "c" itself is not granted
  EXPECT_FALSE(p.allows(access::write, keys::interval("a", "c")));
  EXPECT_TRUE(p.allows(access::write, keys::one("c/x")));
  EXPECT_TRUE(p.allows(access::admin, keys::prefix("c/")));
}

TEST(auth_permissions, the_empty_prefix_is_every_key_and_0xff_bytes_reach_the_end) {
  const permissions all = sealed({{access::admin, ""}});
  EXPECT_TRUE(all.allows(access::admin, keys::all()));
  EXPECT_TRUE(all.allows(access::read, keys::interval("", "")));
  const std::string ff = "\xff\xff";
  const permissions high = sealed({{access::read, ff}});
  EXPECT_TRUE(high.allows(access::read, keys::one(ff + "x")));
  EXPECT_TRUE(high.allows(access::read, keys::interval(ff, "")));  // to the end of the key space
  EXPECT_FALSE(high.allows(access::read, keys::one("\xff")));
  std::string end;
  EXPECT_FALSE(prefix_end(ff, &end));
  ASSERT_TRUE(prefix_end("a\xff", &end));
  EXPECT_EQ(end, "b");
}

v1::AuthSettings settings_of(const std::string& json) {
  auto c = config::parse_json(R"({"live": {"auth": )" + json + "}}");
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? c->live().auth() : v1::AuthSettings();
}

TEST(auth_policy, tokens_are_found_by_their_hash_and_nothing_else_matches) {
  const std::string a = hex(sha256("token-a"));
  const std::string b = hex(sha256("token-b"));
  auto p = policy::build(settings_of(R"({"enabled": true, "users": [
      {"name": "a", "tokenSha256": ")" +
                                     a + R"(", "roles": ["r"]},
      {"name": "b", "tokenSha256": ")" +
                                     b + R"("},
      {"name": "cert-only", "certificate": true},
      {"name": "c", "tokenSha256": ")" +
                                     hex(sha256("token-c")) + R"("}],
    "roles": [{"name": "r", "permissions": [{"prefix": "x/", "access": "write"}]}]})"));
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_NE((*p)->by_token("token-a"), nullptr);
  EXPECT_EQ((*p)->by_token("token-a")->name, "a");
  EXPECT_TRUE((*p)->by_token("token-a")->perms.allows(access::write, keys::one("x/1")));
  EXPECT_EQ((*p)->by_token("token-b")->name, "b");
  EXPECT_EQ((*p)->by_token("token-c")->name, "c");
  EXPECT_EQ((*p)->by_token("token-d"), nullptr);
  EXPECT_EQ((*p)->by_token(""), nullptr);  // cert-only has no token: the empty one is not it
  EXPECT_EQ((*p)->by_token(a), nullptr);   // a hash is not a token
  EXPECT_EQ((*p)->by_certificate("cert-only")->name, "cert-only");
  EXPECT_EQ((*p)->by_certificate("nobody"), nullptr);
  EXPECT_EQ((*p)->by_certificate("a"), nullptr);  // a token user, not a certificate one
}

TEST(auth_policy, errors_name_every_bad_field_and_never_a_value) {
  const std::string secret_looking = std::string(63, 'f') + "g";
  auto p = policy::build(settings_of(R"({"enabled": true, "users": [
      {"name": "a", "tokenSha256": ")" +
                                     secret_looking + R"(", "roles": ["missing"]},
      {"name": "a", "certificate": true},
      {"name": "bad\"name", "certificate": true},
      {"name": "neither"}],
    "roles": [{"name": "r", "permissions": [{"prefix": "x/", "access": "sudo-everything"}]}]})"));
  ASSERT_FALSE(p.ok());
  const std::string m(p.status().message());
  EXPECT_NE(m.find("live.auth.users[0].token_sha256 must be 64 hex digits"), std::string::npos)
      << m;
  EXPECT_NE(m.find("live.auth.users[0].roles[0] names no role"), std::string::npos) << m;
  EXPECT_NE(m.find("live.auth.users[1].name repeats"), std::string::npos) << m;
  EXPECT_NE(m.find("live.auth.users[2].name must be"), std::string::npos) << m;
  EXPECT_NE(m.find("live.auth.users[3] has neither token_sha256 nor certificate"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("live.auth.roles[0].permissions[0].access must be read, write or admin"),
            std::string::npos)
      << m;
  EXPECT_EQ(m.find(secret_looking), std::string::npos) << m;
  EXPECT_EQ(m.find("sudo-everything"), std::string::npos) << m;

  EXPECT_FALSE(policy::build(settings_of(R"({"enabled": true})")).ok());  // no one could call
  EXPECT_TRUE(policy::build(settings_of(R"({"enabled": false})")).ok());
  const std::string h = hex(sha256("same"));
  auto twice = policy::build(settings_of(R"({"users": [{"name": "a", "tokenSha256": ")" + h +
                                         R"("}, {"name": "b", "tokenSha256": ")" + h + R"("}]})"));
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("another user's"), std::string::npos);
}

TEST(auth_policy, config_validation_reports_the_rules_and_getconfig_hides_the_hashes) {
  v1::ServerConfig c = config::defaults();
  c.mutable_live()->mutable_auth()->set_enabled(true);
  EXPECT_FALSE(config::validate(c).ok());
  auto* u = c.mutable_live()->mutable_auth()->add_users();
  u->set_name("root");
  u->set_token_sha256(hex(sha256("t")));
  ASSERT_TRUE(config::validate(c).ok());
  EXPECT_EQ(config::redacted(c).live().auth().users(0).token_sha256(), "(set)");
  EXPECT_EQ(config::redacted(c).live().auth().users(0).name(), "root");
  EXPECT_FALSE(config::redacted(config::defaults()).live().has_auth());
}

TEST(auth_credentials, bearer_tokens_are_parsed_strictly) {
  EXPECT_EQ(bearer_token("Bearer abc"), "abc");
  EXPECT_EQ(bearer_token("bearer   abc"), "abc");
  EXPECT_EQ(bearer_token("BEARER a.b-c_d~e+f/g="), "a.b-c_d~e+f/g=");
  EXPECT_FALSE(bearer_token("Bearer"));
  EXPECT_FALSE(bearer_token("Bearer "));
  EXPECT_FALSE(bearer_token("Bearerabc"));
  EXPECT_FALSE(bearer_token("Basic abc"));
  EXPECT_FALSE(bearer_token("Bearer a b"));
  EXPECT_FALSE(bearer_token(std::string("Bearer a\0b", 10)));
  EXPECT_FALSE(bearer_token("Bearer \x7f"));
  EXPECT_FALSE(bearer_token("Bearer " + std::string(4097, 'a')));
  EXPECT_TRUE(bearer_token("Bearer " + std::string(4096, 'a')));
}

// A user with read on app/ (the issue's cases) and write on tmp/.
class auth_requests : public ::testing::Test {
 protected:
  auth_requests() {
    u.name = "reader";
    u.perms.grant(access::read, "app/");
    u.perms.grant(access::write, "tmp/");
    u.perms.seal();
  }
  template <class Req>
  grpc::StatusCode code_of(const Req& r) {
    verdict v(u);
    require(v, r);
    return v.status().error_code();
  }
  user u;
};

TEST_F(auth_requests, each_method_needs_what_it_names) {
  v1::PutRequest put;
  put.set_key("app/x");
  EXPECT_EQ(code_of(put), grpc::StatusCode::PERMISSION_DENIED);
  put.set_key("tmp/x");
  EXPECT_EQ(code_of(put), grpc::StatusCode::OK);

  v1::RangeRequest range;
  range.mutable_interval()->set_start("app/");
  range.mutable_interval()->set_end("b");
  EXPECT_EQ(code_of(range), grpc::StatusCode::PERMISSION_DENIED);
  range.set_prefix("app/");
  EXPECT_EQ(code_of(range), grpc::StatusCode::OK);
  EXPECT_EQ(code_of(v1::RangeRequest()), grpc::StatusCode::PERMISSION_DENIED);  // every key

  v1::WatchRequest watch;
  watch.set_prefix(true);  // the empty prefix
  EXPECT_EQ(code_of(watch), grpc::StatusCode::PERMISSION_DENIED);
  watch.set_key("app/");
  EXPECT_EQ(code_of(watch), grpc::StatusCode::OK);

  v1::DeleteRequest del;
  del.set_key("tmp/");
  del.set_by_prefix(true);
  EXPECT_EQ(code_of(del), grpc::StatusCode::OK);
  del.set_key("tmp");  // tmp, tmp/, tmp0...: past tmp/
  EXPECT_EQ(code_of(del), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(auth_requests, a_txn_needs_its_compares_and_both_branches) {
  v1::TxnRequest txn;
  txn.add_compares()->set_key("app/x");
  txn.add_success()->mutable_get()->set_key("app/x");
  EXPECT_EQ(code_of(txn), grpc::StatusCode::OK);
  txn.add_failure()->mutable_put()->set_key("app/x");  // the failure branch writes in app/
  verdict v(u);
  require(v, txn);
  EXPECT_EQ(v.status().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(v.status().error_message().find("user 'reader' has no write permission on key "
                                            "'app/x'"),
            std::string::npos)
      << v.status().error_message();
  v1::TxnRequest compare_outside;
  compare_outside.add_compares()->set_key("secret");
  EXPECT_EQ(code_of(compare_outside), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(auth_requests, a_batch_is_refused_whole_for_one_denied_operation) {
  v1::BatchRequest batch;
  batch.add_ops()->mutable_get()->set_key("app/x");
  batch.add_ops()->mutable_put()->set_key("tmp/x");
  EXPECT_EQ(code_of(batch), grpc::StatusCode::OK);
  batch.add_ops()->mutable_increment()->set_key("app/n");
  EXPECT_EQ(code_of(batch), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(auth_requests, admin_needs_admin_on_every_key_and_messages_escape_keys) {
  verdict v(u);
  require_admin(v);
  EXPECT_EQ(v.status().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(v.status().error_message().find("admin permission on every key"), std::string::npos);
  v1::PutRequest put;
  put.set_key(std::string("ctl\n\x01") + std::string(100, 'k'));
  verdict w(u);
  require(w, put);
  EXPECT_EQ(w.status().error_message().find('\n'), std::string::npos);
  EXPECT_NE(w.denied_keys().find("ctl\\n\\x01"), std::string::npos) << w.denied_keys();
  EXPECT_NE(w.denied_keys().find("..."), std::string::npos);  // cut at 64 bytes
}

}  // namespace
}  // namespace shoal::service::auth

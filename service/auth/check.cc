#include "service/auth/check.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace shoal::service::auth {
namespace {

// Keys are quoted in messages and the audit log up to this many bytes.
constexpr std::size_t k_shown_key_bytes = 64;

std::string show(std::string_view k) {
  const std::string_view head = k.substr(0, k_shown_key_bytes);
  std::string out = absl::CHexEscape(absl::string_view(head.data(), head.size()));
  if (k.size() > k_shown_key_bytes) out += "...";
  return out;
}

std::string describe(const keys& k) {
  switch (k.what) {
    case keys::kind::one:
      return absl::StrCat("key '", show(k.start), "'");
    case keys::kind::prefix:
      return k.start.empty() ? std::string("every key")
                             : absl::StrCat("keys with prefix '", show(k.start), "'");
    case keys::kind::interval:
      return absl::StrCat(
          "keys from '", show(k.start), "' to ",
          k.end.empty() ? std::string("the last") : absl::StrCat("'", show(k.end), "'"));
  }
  return {};
}

}  // namespace

void verdict::need(access a, const keys& k) {
  if (denied_ || user_.perms.allows(a, k)) return;
  denied_ = true;
  access_ = a;
  keys_ = describe(k);
}

grpc::Status verdict::status() const {
  if (!denied_) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      absl::StrCat("user '", user_.name, "' has no ", name_of(access_),
                                   " permission on ", keys_, " (live.auth.roles)"));
}

void require(verdict& v, const v1::GetRequest& r) { v.need(access::read, keys::one(r.key())); }

void require(verdict& v, const v1::PutRequest& r) { v.need(access::write, keys::one(r.key())); }

void require(verdict& v, const v1::DeleteRequest& r) {
  v.need(access::write, r.by_prefix() ? keys::prefix(r.key()) : keys::one(r.key()));
}

void require(verdict& v, const v1::IncrementRequest& r) {
  v.need(access::write, keys::one(r.key()));
}

void require(verdict& v, const v1::RangeRequest& r) {
  if (r.has_interval()) {
    v.need(access::read, keys::interval(r.interval().start(), r.interval().end()));
  } else {
    v.need(access::read, keys::prefix(r.prefix()));  // no selector: every key
  }
}

void require(verdict& v, const v1::WatchRequest& r) {
  v.need(access::read, r.prefix() ? keys::prefix(r.key()) : keys::one(r.key()));
}

void require(verdict& v, const v1::Op& op) {
  switch (op.op_case()) {
    case v1::Op::kGet:
      return require(v, op.get());
    case v1::Op::kPut:
      return require(v, op.put());
    case v1::Op::kDelete:
      return require(v, op.delete_());
    case v1::Op::kIncrement:
      return require(v, op.increment());
    case v1::Op::kRange:
      return require(v, op.range());
    case v1::Op::OP_NOT_SET:
      return;  // refused by the handler: it names no key
  }
}

void require(verdict& v, const v1::BatchRequest& r) {
  for (const v1::Op& op : r.ops()) require(v, op);
}

void require(verdict& v, const v1::TxnRequest& r) {
  for (const v1::Compare& c : r.compares()) v.need(access::read, keys::one(c.key()));
  for (const v1::Op& op : r.success()) require(v, op);
  for (const v1::Op& op : r.failure()) require(v, op);
}

void require(verdict& v, const v1::PipelineRequest& r) {
  if (r.has_op()) require(v, r.op());
  if (r.has_batch()) require(v, r.batch());
}

void require_admin(verdict& v) { v.need(access::admin, keys::all()); }

}  // namespace shoal::service::auth

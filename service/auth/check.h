// check: what each request needs of its caller — read, write or admin on the keys it names — and
// whether a user has it. A request is allowed only if every key it names is: a Range that reaches
// past a permitted prefix is refused, not clipped; a Txn needs read on its compares' keys and
// what each operation of both branches needs; a Batch needs what each operation needs.
//
// When: at admission (guard.h) for a whole call, and for each request on a Pipeline stream.
//
//   auth::verdict v(*who);
//   auth::require(v, put_request);
//   if (!v.ok()) return v.status();       // PERMISSION_DENIED naming the user, access and key
//
// The first denial is kept; the checks after it are skipped.
#pragma once

#include <string>
#include <string_view>

#include "grpcpp/grpcpp.h"
#include "service/auth/policy.h"
#include "shoal/v1/kv.pb.h"

namespace shoal::service::auth {

class verdict {
 public:
  explicit verdict(const user& u) : user_(u) {}
  void need(access a, const keys& k);
  bool ok() const { return !denied_; }
  // PERMISSION_DENIED, naming the user, the access and (the start of) the keys.
  grpc::Status status() const;
  // For the audit line: the denied access and the keys' first bytes, escaped.
  access denied_access() const { return access_; }
  const std::string& denied_keys() const { return keys_; }
  const user& who() const { return user_; }

 private:
  const user& user_;
  bool denied_ = false;
  access access_ = access::read;
  std::string keys_;
};

void require(verdict& v, const v1::GetRequest& r);
void require(verdict& v, const v1::PutRequest& r);
void require(verdict& v, const v1::DeleteRequest& r);
void require(verdict& v, const v1::IncrementRequest& r);
void require(verdict& v, const v1::RangeRequest& r);
void require(verdict& v, const v1::WatchRequest& r);
void require(verdict& v, const v1::Op& op);
void require(verdict& v, const v1::BatchRequest& r);
void require(verdict& v, const v1::TxnRequest& r);
void require(verdict& v, const v1::PipelineRequest& r);
// The Admin service: admin on every key.
void require_admin(verdict& v);

}  // namespace shoal::service::auth

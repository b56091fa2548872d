// ops: the operations of a Batch, a Txn or a Pipeline, built in one line for tests.
#pragma once

#include <cstdint>
#include <string>

#include "shoal/v1/kv.pb.h"

namespace shoal::testing {

inline v1::Op put_op(const std::string& key, const std::string& value) {
  v1::Op op;
  op.mutable_put()->set_key(key);
  op.mutable_put()->set_value(value);
  return op;
}

inline v1::Op get_op(const std::string& key) {
  v1::Op op;
  op.mutable_get()->set_key(key);
  return op;
}

inline v1::Op increment_op(const std::string& key, int64_t delta) {
  v1::Op op;
  op.mutable_increment()->set_key(key);
  op.mutable_increment()->set_delta(delta);
  return op;
}

}  // namespace shoal::testing

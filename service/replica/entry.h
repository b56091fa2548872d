// entry: what one Raft log entry of a replicated shoald carries, and its encoding.
//
// An entry is an intent, not an outcome: the call a client made (its method and request, as the
// client sent it) or a leader's decision (these keys are due to expire; this is the cluster's
// store id). Every replica applies the same entries in the same order to the same state, so they
// reach the same outcome (with the same limits: a call applies with the settings of the last
// settings entry before it, the leader's, not with each replica's own): the revision an entry gets
// is the store's next one when it is applied (Raft's own index is not a revision: barriers and
// membership changes take indexes too).
//
//   [u8 format = 1][u8 kind][u64 origin][u64 sequence][i64 wall-clock ns][body]
//   call:   [u8 method][u32 size][request]                (a shoal.v1 message)
//   expire: [u32 n] n x ([u32 key size][key][u64 mod_revision])
//   init:     [u32 size][store id]
//   settings: [u32 size][shoal.v1.ServerConfig]           (the leader's, without live.auth)
// Every part is sized: Raft's disk log hands an entry back padded with zeros to a multiple of 8
// bytes, and decode() accepts that padding and nothing else.
//
// origin and sequence name the proposal, so that the replica that proposed it can hand the
// outcome to the call waiting for it; origin is random per process, so a replay of an old
// entry after a restart never matches a new call.
//
//   std::string bytes = replica::encode_call(origin, seq, wall_ns, metrics::method::put, req);
//   replica::entry e;
//   if (replica::decode(bytes, &e)) { e.kind == replica::entry_kind::call ... }
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "google/protobuf/message_lite.h"
#include "service/metrics/metrics.h"

namespace shoal::service::replica {

inline constexpr uint8_t k_entry_format = 1;

enum class entry_kind : uint8_t { call = 1, expire = 2, init = 3, settings = 4 };

struct due_key {
  std::string key;
  uint64_t mod_revision = 0;  // expired only if the entry is still this one
};

struct entry {
  entry_kind kind = entry_kind::call;
  uint64_t origin = 0;
  uint64_t sequence = 0;
  int64_t wall_ns = 0;
  metrics::method method = metrics::method::get;  // call
  std::string_view body;     // call: the request; init: the store id; settings: the config
  std::vector<due_key> due;  // expire
};

std::string encode_call(uint64_t origin, uint64_t sequence, int64_t wall_ns, metrics::method m,
                        const google::protobuf::MessageLite& request);
// The same, from a request already serialized.
std::string encode_call(uint64_t origin, uint64_t sequence, int64_t wall_ns, metrics::method m,
                        std::string_view request);
std::string encode_expire(uint64_t origin, uint64_t sequence, int64_t wall_ns,
                          const std::vector<due_key>& due);
std::string encode_init(uint64_t origin, uint64_t sequence, int64_t wall_ns,
                        std::string_view store_id);
std::string encode_settings(uint64_t origin, uint64_t sequence, int64_t wall_ns,
                            std::string_view server_config);

// False if `bytes` is not an entry this version can read (the views point into `bytes`).
bool decode(std::string_view bytes, entry* out);

}  // namespace shoal::service::replica

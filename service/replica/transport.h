// transport: how Raft's messages travel between replicas — a raft_uv_transport of Shoal's own.
//
// libraft's bundled TCP transport takes IPv4 dotted quads only, resolved once. Replicas in a
// StatefulSet are known by DNS name (shoal-0.shoal) and their addresses change when a pod moves,
// so this transport resolves the peer's name at every connect (libuv's getaddrinfo, off the loop),
// then opens a TCP connection and introduces itself: the first bytes on a connection are
//
//   [u64 magic "shoalraf"][u64 sender's raft id][u64 sender's incarnation][u32 address size]
//   [sender's address]
//
// which the accepting side reads exactly (nothing of Raft's stream is consumed); if `admit`
// accepts the sender, it answers [magic][its raft id][its incarnation][its commit index] and
// hands the stream to Raft. The connecting side reads that answer exactly, checks that the member
// it dialled answered (`admit` again), passes the commit index on (`peer_commit`: what a restarted
// replica must apply, if that peer leads, before it calls itself caught up), and only then hands
// its stream to Raft. An incarnation names a replica's disk (node.h): a replica back with an empty
// disk under its old id is refused both ways. A member's address is
// "peer_host:port/client_host:port" (member.h); only the peer part is dialled.
//
// With TLS (tls_files::on(), from startup.raft_tls_*), each connection is a tls_link (tls_link.h)
// from its first byte: the introduction and everything after it travel encrypted, both sides
// present certificates from the peers' CA, the dialler checks the certificate names the host it
// dialled, and the accepting side checks it names the peer host of the member the introduction
// claims (a member this replica knows, at the address it knows). A connection refused for TLS
// reasons is reported through `problem` ("to 2" or
// "from 10.0.0.7", and why); a later connection that succeeds reports "" for the same key.
//
//   raft_uv_transport t{};
//   replica::transport_init(&t, loop, /*listen=*/"0.0.0.0:7001", incarnation,
//                           {.admit = [](uint64_t id, uint64_t incarnation) { return true; },
//                            .problem = [](const std::string& peer, const std::string& why) {},
//                            .commit_index = [] { return uint64_t{0}; },
//                            .peer_commit = [](uint64_t id, uint64_t commit) {},
//                            .peer_of = [](uint64_t id) { return std::string(); },
//                            .probe_view = [] { return replica::probe_answer{}; }},
//                           tls_files{});
//   raft_uv_init(&io, loop, dir, &t);   // Raft calls init, listen, connect and close itself
//   ... after raft_uv_close(&io) and the loop's end:
//   replica::transport_close(&t);
//
// A follower also watches its leader's process (transport_watch): one more connection to it,
// introduced the same way under another magic ("shoalwch"), which carries nothing after the
// answer. The accepting side holds it open (one per member, at most 64); when it ends, the
// watcher dials again, and a refused dial — nothing listens on the leader's Raft port any more —
// means the leader's process is gone (a crash, an OOM kill, SIGKILL: the kernel closes a dead
// process's sockets). A connection cut silently (a partition, a host that lost power) ends
// nothing here: those are left to Raft's election timeout. The followers then compare their logs
// (transport_probe: a dial answered with where the member's log ends and whether it still hears
// the leader, then closed), so that the one with the most up-to-date log, which the others will
// vote for, starts the election (node.h).
//
// Runs on the libuv loop's thread only, as libuv requires.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "service/replica/raft_c.h"
#include "service/replica/tls_link.h"

namespace shoal::service::replica {

// What a member answers a probe with (transport_probe): where its log ends (Raft compares logs by
// last term, then last index), the leader it follows (0: none) and how long since it last heard
// from it. `answered` is false when the dial failed or was refused.
struct probe_answer {
  uint64_t id = 0;
  bool answered = false;
  uint64_t last_index = 0;
  uint64_t last_term = 0;
  uint64_t leader_id = 0;
  uint64_t silent_ms = 0;
};

// Whether a peer may talk to this replica: its raft id and incarnation. On the loop thread.
using admit_fn = std::function<bool(uint64_t id, uint64_t incarnation)>;

// What the transport asks of its node, and tells it; all on the loop thread.
struct transport_hooks {
  admit_fn admit;
  // A connection refused (TLS, identity) or, with "", one that succeeded.
  std::function<void(const std::string& peer, const std::string& problem)> problem;
  // This member's commit index, for the answer to a peer that connects.
  std::function<uint64_t()> commit_index;
  // The commit index a dialled peer answered with.
  std::function<void(uint64_t id, uint64_t commit)> peer_commit;
  // Member `id`'s peer address ("host:port") as this replica knows it; empty if it knows no such
  // member. Asked with TLS only: a connection must come from a known member, named by its
  // certificate.
  std::function<std::string(uint64_t id)> peer_of;
  // This member's answer to a probe (id and answered are the transport's).
  std::function<probe_answer()> probe_view;
  // Member `id` probed this one (it found the leader's port refusing it). Optional.
  std::function<void(uint64_t id)> probed_by;
};

// `listen` is host:port to bind (a name is resolved once, at listen time).
int transport_init(raft_uv_transport* t, uv_loop_t* loop, const std::string& listen,
                   uint64_t incarnation, transport_hooks hooks, tls_files tls);
// Watches member `id` (at `address`, "peer/client"): `gone(id)`, on the loop thread, once a dial
// to it is refused — at once, or after the watch connection ended (a dead process). An answered
// dial that later ends, a timeout, a name that does not resolve, or a reset report nothing; after
// 4 dials without a refusal the watch gives up quietly (a connection that lasted 10 s earns the
// 4 again). One watch at a time: a new one, or
// transport_unwatch, ends the one before without a report.
void transport_watch(raft_uv_transport* t, uint64_t id, const std::string& address,
                     std::function<void(uint64_t id)> gone);
void transport_unwatch(raft_uv_transport* t);

// Asks member `id` (at `address`) for its probe_answer: one dial, introduced under a third magic
// ("shoalprb"), which the member answers with [last log index][last log term][leader][ms since it
// heard from it] after the usual answer, then closes. `done` once, on the loop thread.
void transport_probe(raft_uv_transport* t, uint64_t id, const std::string& address,
                     std::function<void(const probe_answer&)> done);

// Frees what transport_init allocated, once Raft has closed the transport.
void transport_close(raft_uv_transport* t);

}  // namespace shoal::service::replica

// A follower's part when its leader's process dies (node.h: leader_gone): the watch on the
// leader, the comparison of the voters' logs, and the election the most up-to-date one starts.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "service/log.h"
#include "service/replica/node.h"
#include "service/replica/transport.h"

namespace shoal::service::replica {
namespace {

// The term of the last entry in r's log (in memory, as libraft compares logs), or of its
// snapshot when the log holds no entry.
raft_term last_log_term(const struct raft& r) {
  const raft_log& log = r.log;
  if (log.front == log.back) return log.snapshot.last_term;
  const std::size_t last = (log.back == 0 ? log.size : log.back) - 1;
  return log.entries[last].term;
}

bool is_voter(const struct raft& r, uint64_t id) {
  for (unsigned i = 0; i < r.configuration.n; ++i) {
    if (r.configuration.servers[i].id == id) return r.configuration.servers[i].role == RAFT_VOTER;
  }
  return false;
}

// Whether the member running r still follows `leader` in `term`.
bool still_follows(struct raft& r, uint64_t leader, uint64_t term) {
  raft_id now = 0;
  const char* address = nullptr;
  raft_leader(&r, &now, &address);
  return raft_state(&r) == RAFT_FOLLOWER && now == leader && r.current_term == term;
}

// The voters other than `self` and `leader`: id and address.
std::vector<std::pair<uint64_t, const char*>> other_voters(const struct raft& r, uint64_t self,
                                                           uint64_t leader) {
  std::vector<std::pair<uint64_t, const char*>> out;
  for (unsigned i = 0; i < r.configuration.n; ++i) {
    const raft_server& s = r.configuration.servers[i];
    if (s.role == RAFT_VOTER && s.id != self && s.id != leader) out.emplace_back(s.id, s.address);
  }
  return out;
}

}  // namespace

void node::watch_leader(const raft_view& v) {
  const bool following = v.state == raft_view::role::follower && v.leader_id != 0 &&
                         v.leader_id != id_ && !v.leader_address.empty();
  const uint64_t leader = following ? v.leader_id : 0;
  if (leader == watched_) return;
  watched_ = leader;
  if (leader == 0) return transport_unwatch(&transport_);
  transport_watch(&transport_, leader, v.leader_address, [this](uint64_t id) { leader_gone(id); });
}

int node::start_io(raft_io* io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv) {
  // libraft's raft_init makes the I/O's data the raft instance, whose data is this node.
  auto* self = static_cast<node*>(static_cast<struct raft*>(io->data)->data);
  self->recv_ = recv;
  return self->uv_start_(io, msecs, tick, recv);
}

void node::recheck_leader() {
  if (closing_ || watched_ == 0 || round_.at != gone_round::stage::none) return;
  raft_id leader = 0;
  const char* address = nullptr;
  raft_leader(&raft_, &leader, &address);
  if (leader != watched_ || address == nullptr) return;
  transport_watch(&transport_, leader, address, [this](uint64_t id) { leader_gone(id); });
}

probe_answer node::probe_view() {
  probe_answer a;
  a.last_index = raft_last_index(&raft_);
  a.last_term = last_log_term(raft_);
  raft_id leader = 0;
  const char* address = nullptr;
  raft_leader(&raft_, &leader, &address);
  a.leader_id = leader;
  if (raft_state(&raft_) == RAFT_FOLLOWER && a.leader_id != 0) {
    a.silent_ms = raft_.io->time(raft_.io) - raft_.election_timer_start;
  }
  return a;
}

void node::leader_gone(uint64_t id) {
  if (closing_ || recv_ == nullptr || round_.at != gone_round::stage::none) return;
  if (!is_voter(raft_, id_) || !still_follows(raft_, id, raft_.current_term)) return;
  gone_round next;
  next.number = round_.number + 1;
  next.leader = id;
  next.term = raft_.current_term;
  next.at = gone_round::stage::silence;
  round_ = std::move(next);
  SHOAL_LOG(info, "raft: the leader's process is gone (its Raft port refuses connections)",
            {{"leader", static_cast<int64_t>(id)}, {"term", static_cast<int64_t>(round_.term)}});
  // Refused is not yet silent: once libraft too has not heard from the leader for two heartbeats
  // (a leader that is alive keeps talking to this member), the others are asked.
  const uint64_t silent = raft_.io->time(raft_.io) - raft_.election_timer_start;
  const uint64_t wait = 2 * uint64_t{opts_.heartbeat_ms};
  if (silent >= wait) return probe_voters();
  uv_timer_start(&gone_timer_, on_gone_timer, wait - silent, 0);
}

void node::on_gone_timer(uv_timer_t* t) {
  auto* self = static_cast<node*>(t->data);
  if (self->round_.at == gone_round::stage::silence) return self->probe_voters();
  if (self->round_.at == gone_round::stage::probing) return self->elect();  // the deadline
  if (self->round_.at == gone_round::stage::electing) self->resend_vote_requests();
}

void node::probe_voters() {
  if (closing_ || !still_follows(raft_, round_.leader, round_.term)) {
    round_.at = gone_round::stage::none;
    return;
  }
  round_.at = gone_round::stage::probing;
  probe_answer own = probe_view();
  own.id = id_;
  own.answered = true;
  round_.answers = {own};
  const auto others = other_voters(raft_, id_, round_.leader);
  round_.waiting = static_cast<int>(others.size());
  if (others.empty()) return elect();
  // Answers that have not come within half an election timeout are left out.
  uv_timer_start(&gone_timer_, on_gone_timer, opts_.election_ms / 2, 0);
  for (const auto& [voter, voter_address] : others) {
    transport_probe(&transport_, voter, voter_address,
                    [this, number = round_.number](const probe_answer& a) { probed(number, a); });
  }
}

void node::probed(uint64_t round, const probe_answer& a) {
  if (round != round_.number || round_.at != gone_round::stage::probing) return;  // decided
  if (a.answered) round_.answers.push_back(a);
  if (--round_.waiting == 0) elect();
}

void node::elect() {
  uv_timer_stop(&gone_timer_);
  gone_round done;
  done.number = round_.number;
  const gone_round r = std::exchange(round_, std::move(done));  // over, unless this one starts
  // A voter that still hears the leader: it is alive, only not reachable from here. Raft's
  // election timeout (and pre-vote) decide, as for any partition.
  for (const probe_answer& a : r.answers) {
    if (a.id != id_ && a.leader_id == r.leader && a.silent_ms < opts_.heartbeat_ms) {
      SHOAL_LOG(info, "raft: another member still hears the leader; no early election",
                {{"member", static_cast<int64_t>(a.id)}});
      return;
    }
  }
  // The most up-to-date log as Raft's vote compares them (last term, then last index), the
  // lowest id among equals.
  const probe_answer best = *std::min_element(r.answers.begin(), r.answers.end(),
                                              [](const probe_answer& a, const probe_answer& b) {
                                                if (a.last_term != b.last_term)
                                                  return a.last_term > b.last_term;
                                                if (a.last_index != b.last_index)
                                                  return a.last_index > b.last_index;
                                                return a.id < b.id;
                                              });
  const bool here = best.id == id_ && !closing_ && still_follows(raft_, r.leader, r.term);
  SHOAL_LOG(info, "raft: the followers' logs compared; the most up-to-date starts the election",
            {{"starts", static_cast<int64_t>(best.id)},
             {"compared", static_cast<int64_t>(r.answers.size())},
             {"here", here}});
  if (!here) return;
  raft_id leader = 0;
  const char* leader_address = nullptr;
  raft_leader(&raft_, &leader, &leader_address);
  // libraft frees its copy of the leader's address as this member becomes a candidate.
  const std::string address = leader_address != nullptr ? leader_address : "";
  raft_message m{};
  m.type = RAFT_IO_TIMEOUT_NOW;
  m.server_id = leader;
  m.server_address = address.c_str();
  m.timeout_now.term = r.term;
  m.timeout_now.last_log_index = raft_last_index(&raft_);
  m.timeout_now.last_log_term = last_log_term(raft_);
  recv_(&io_, &m);
  if (raft_state(&raft_) != RAFT_CANDIDATE) return;
  ++dead_leader_elections_;
  round_.leader = r.leader;
  round_.term = raft_.current_term;  // the election's
  round_.at = gone_round::stage::electing;
  uv_timer_start(&gone_timer_, on_gone_timer, opts_.heartbeat_ms, 0);
}

void node::resend_vote_requests() {
  constexpr int k_resends = 3;
  if (closing_ || raft_state(&raft_) != RAFT_CANDIDATE || raft_.current_term != round_.term ||
      round_.resends >= k_resends) {
    round_.at = gone_round::stage::none;  // elected, beaten, or left to the election timeout
    return;
  }
  ++round_.resends;
  for (const auto& [voter, address] : other_voters(raft_, id_, round_.leader)) {
    raft_message m{};
    m.type = RAFT_IO_REQUEST_VOTE;
    m.server_id = voter;
    m.server_address = address;
    m.request_vote = {.term = raft_.current_term,
                      .candidate_id = id_,
                      .last_log_index = raft_last_index(&raft_),
                      .last_log_term = last_log_term(raft_),
                      .disrupt_leader = true,
                      .pre_vote = false};
    auto* req = static_cast<raft_io_send*>(raft_malloc(sizeof(raft_io_send)));
    req->data = nullptr;
    if (io_.send(&io_, req, &m, [](raft_io_send* q, int) { raft_free(q); }) != 0) raft_free(req);
  }
  uv_timer_start(&gone_timer_, on_gone_timer, opts_.heartbeat_ms, 0);
}

raft_view node::view() const {
  rt::plain_lock lock(view_mu_);
  return view_;
}

}  // namespace shoal::service::replica

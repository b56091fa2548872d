#include "service/replica/raft_store.h"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "runtime/runtime.h"
#include "runtime/sync/select.h"
#include "runtime/time/sleep.h"
#include "service/context.h"
#include "service/durable.h"
#include "service/handlers/kv.h"
#include "service/log.h"
#include "service/replica/bytes.h"
#include "service/replica/entry.h"
#include "service/wal/snapshot.h"

namespace shoal::service::replica {
namespace {

// Version 2 carries the log's settings after the store id; version 1 (before settings entries)
// is still read.
constexpr char k_snapshot_magic[8] = {'S', 'H', 'O', 'A', 'L', 'R', 'S', '2'};
constexpr char k_snapshot_magic_v1[8] = {'S', 'H', 'O', 'A', 'L', 'R', 'S', '1'};
constexpr std::size_t k_expire_batch = 1000;  // keys per expire entry

uint64_t random_origin() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ 1;  // never 0
}

void put_bytes(std::string* out, std::string_view b) {
  put_int(out, static_cast<uint32_t>(b.size()));
  out->append(b);
}

bool get_bytes(std::string_view* in, std::string_view* out) {
  uint32_t size = 0;
  if (!get_int(in, &size) || size > in->size()) return false;
  *out = in->substr(0, size);
  in->remove_prefix(size);
  return true;
}

// A call applied on a replica that did not propose it: parsed here, its reply dropped.
template <class Req, class Resp>
void apply_as(context& ctx, grpc::Status (*handle)(context&, const Req&, Resp&),
              std::string_view bytes) {
  Req req;
  Resp resp;
  if (!req.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    SHOAL_LOG(error, "raft: an entry's request does not parse; skipped on every replica");
    return;
  }
  const grpc::Status st = handle(ctx, req, resp);
  // Refused the same way on every replica (a condition, a limit): nothing changed anywhere.
  if (!st.ok()) {
    SHOAL_LOG(debug, "raft: an entry's call was refused where it applied",
              {{"code", static_cast<int64_t>(st.error_code())}, {"error", st.error_message()}});
  }
}

// Peers' TLS: the CA turns it on; this replica's certificate defaults to the gRPC port's.
tls_files peer_tls(const v1::StartupSettings& s) {
  if (s.raft_tls_ca_file().empty()) return {};
  const bool own = !s.raft_tls_cert_file().empty();
  return {.cert = own ? s.raft_tls_cert_file() : s.tls_cert_file(),
          .key = own ? s.raft_tls_key_file() : s.tls_key_file(),
          .ca = s.raft_tls_ca_file()};
}

}  // namespace

raft_store::raft_store(context* ctx, const rt::clock* clock)
    : ctx_(ctx), clock_(clock), origin_(random_origin()) {}

absl::StatusOr<std::unique_ptr<raft_store>> raft_store::open(const v1::StartupSettings& startup,
                                                             context* ctx, const rt::clock* clock,
                                                             std::function<void()> caught_up) {
  auto members = parse_members(startup.raft_members());
  if (!members.ok()) return members.status();
  // The data directory, as a single durable server makes it (its parent must exist).
  if (::mkdir(startup.data_dir().c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create the data directory ", startup.data_dir(), ": ", std::strerror(errno)));
  }
  std::unique_ptr<raft_store> rs(new raft_store(ctx, clock));
  node::options o;
  o.id = startup.raft_id();
  o.members = std::move(*members);
  o.dir = startup.data_dir() + "/raft";
  o.identity_dir = startup.data_dir();
  o.listen = startup.raft_listen();
  o.bootstrap = startup.raft_bootstrap();
  o.election_ms = startup.raft_election_ms();
  o.heartbeat_ms = startup.raft_heartbeat_ms();
  o.snapshot_threshold = startup.raft_snapshot_entries();
  o.snapshot_trailing = startup.raft_snapshot_trailing();
  o.log_max_bytes = startup.raft_log_max_bytes();
  o.term = &ctx->raft_term;
  o.tls = peer_tls(startup);
  if (o.tls.on()) {
    if (auto st = check_tls_files(o.tls); !st.ok()) return st;
  }
  o.fsm = rs.get();
  o.on_caught_up = std::move(caught_up);
  auto n = node::start(std::move(o));
  if (!n.ok()) return n.status();
  rs->node_ = std::move(*n);
  return rs;
}

raft_store::~raft_store() { stop(); }

void raft_store::stop() {
  if (node_) node_->stop();
}

int64_t raft_store::wall_ns() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string raft_store::wait_store_id() {
  std::unique_lock lock(id_mu_);
  if (store_id_.empty()) SHOAL_LOG(info, "raft: waiting for the cluster's store id");
  id_cv_.wait(lock, [&] { return !store_id_.empty(); });
  return store_id_;
}

void raft_store::set_store_id(std::string_view id) {
  {
    std::lock_guard lock(id_mu_);
    if (!store_id_.empty() || id.empty()) return;
    store_id_ = std::string(id);
  }
  id_cv_.notify_all();
}

// ---- the call path (runtime tasks) ----------------------------------------------------------

std::string raft_store::leader_client() const {
  const raft_view v = node_->view();
  member m;
  if (v.leader_id == 0 || !split_address(v.leader_address, &m)) return "";
  return m.client;
}

grpc::Status raft_store::not_leader() const {
  const std::string hint = leader_client();
  return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      hint.empty()
                          ? absl::StrCat(k_not_leading,
                                         " and knows no leader (an election is on, or a majority "
                                         "is unreachable); nothing was applied: retry shortly")
                          : absl::StrCat(k_not_leading,
                                         "; nothing was applied: send it to the "
                                         "leader at ",
                                         hint, " (metadata shoal-leader)"));
}

grpc::Status raft_store::status_of(int raft_status) const {
  switch (raft_status) {
    case RAFT_NOTLEADER:
      return not_leader();
    case RAFT_LEADERSHIPLOST:
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "leadership changed before the write was known to commit: it may or "
                          "may not have been applied; read it back before retrying");
    case RAFT_SHUTDOWN:
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "this replica is shutting down; the write may or may not have been "
                          "applied: read it back on another replica before retrying");
    default:
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          absl::StrCat("the Raft log refused the write (",
                                       raft_strerror(raft_status), "); nothing was applied"));
  }
}

void raft_store::fail(uint64_t sequence, int raft_status) {
  rt::plain_lock lock(pending_mu_);
  auto it = pending_.find(sequence);
  if (it == pending_.end()) return;  // applied already, or forgotten
  it->second.done.send(status_of(raft_status));
  pending_.erase(it);
}

void raft_store::forget(uint64_t sequence) {
  rt::plain_lock lock(pending_mu_);
  pending_.erase(sequence);
}

raft_store::ticket::ticket(ticket&& o) noexcept
    : owner_(std::exchange(o.owner_, nullptr)),
      sequence_(o.sequence_),
      outcome_(std::move(o.outcome_)),
      refused_(std::move(o.refused_)) {}

raft_store::ticket::~ticket() {
  // However its holder ends, the apply no longer finds the call.
  if (owner_ != nullptr) owner_->forget(sequence_);
}

raft_store::ticket raft_store::submit(metrics::method m,
                                      const google::protobuf::MessageLite& request, run_fn run,
                                      void* call) {
  if (!leader()) return ticket(not_leader());
  const uint64_t sequence = next_sequence_.fetch_add(1, std::memory_order_relaxed);
  auto channel = rt::oneshot::channel<grpc::Status>();
  {
    rt::plain_lock lock(pending_mu_);
    pending_.emplace(sequence, pending{run, call, std::move(channel.first)});
  }
  node_->propose(encode_call(origin_, sequence, wall_ns(), m, request), [this, sequence](int rv) {
    if (rv != 0) fail(sequence, rv);
  });
  return ticket(this, sequence, std::move(channel.second));
}

rt::task<grpc::Status> raft_store::outcome(ticket t) {
  if (t.owner_ == nullptr) co_return t.refused_;
  auto result = co_await std::move(*t.outcome_);
  if (!result) {
    co_return grpc::Status(grpc::StatusCode::UNAVAILABLE, "this replica stopped");
  }
  co_return std::move(*result);
}

rt::task<grpc::Status> raft_store::write(metrics::method m,
                                         const google::protobuf::MessageLite& request, run_fn run,
                                         void* call) {
  auto st = co_await outcome(submit(m, request, run, call));
  co_return st;
}

rt::task<grpc::Status> raft_store::linearize() {
  if (!leader()) co_return not_leader();
  auto channel = rt::oneshot::channel<int>();
  auto tx = std::make_shared<rt::oneshot::sender<int>>(std::move(channel.first));
  node_->barrier([tx](int rv) { tx->send(rv); });
  auto rv = co_await std::move(channel.second);
  if (!rv) co_return grpc::Status(grpc::StatusCode::UNAVAILABLE, "this replica stopped");
  if (*rv != 0) {
    co_return rv.value() == RAFT_NOTLEADER || rv.value() == RAFT_LEADERSHIPLOST
        ? not_leader()
        : grpc::Status(grpc::StatusCode::UNAVAILABLE,
                       absl::StrCat("a linearizable read needs a Raft barrier, which failed (",
                                    raft_strerror(*rv), "): retry, or read serializable"));
  }
  co_return grpc::Status::OK;
}

rt::task<bool> raft_store::expire(std::vector<store::store::due_entry> due) {
  std::vector<due_key> keys;
  keys.reserve(due.size());
  for (auto& d : due) keys.push_back(due_key{std::move(d.key), d.mod_revision});
  auto channel = rt::oneshot::channel<int>();
  auto tx = std::make_shared<rt::oneshot::sender<int>>(std::move(channel.first));
  node_->propose(encode_expire(origin_, 0, wall_ns(), keys), [tx](int rv) { tx->send(rv); });
  auto rv = co_await std::move(channel.second);
  co_return rv&&* rv == 0;
}

rt::task<> raft_store::purge(rt::notify* expiry_changed) {
  store::store* kv = ctx_->kv;
  for (;;) {
    if (!leader()) {
      co_await leadership_.notified();
      continue;
    }
    kv->set_purge_wakeup(0);
    std::vector<store::store::due_entry> due = kv->due(k_expire_batch);
    if (!due.empty()) {
      const bool expired = co_await expire(std::move(due));
      if (!expired && leader()) {
        // Not committed while this replica still leads (a slow majority): wait a beat.
        co_await rt::sleep(std::chrono::milliseconds(100));
      }
      continue;
    }
    const int64_t next = kv->earliest_expiry();
    kv->set_purge_wakeup(next);
    if (next == 0) {
      (void)co_await rt::select(rt::to_task(expiry_changed->notified()),
                                rt::to_task(leadership_.notified()));
      continue;
    }
    const rt::clock::time_point when{std::chrono::nanoseconds(next)};
    (void)co_await rt::select(rt::to_task(rt::sleep_until(when)),
                              rt::to_task(expiry_changed->notified()),
                              rt::to_task(leadership_.notified()));
  }
}

rt::task<bool> raft_store::hand_over() {
  if (!leader()) co_return false;
  auto channel = rt::oneshot::channel<int>();
  auto tx = std::make_shared<rt::oneshot::sender<int>>(std::move(channel.first));
  node_->transfer(0, [tx](int rv) { tx->send(rv); });
  auto rv = co_await std::move(channel.second);
  const raft_view v = node_->view();
  SHOAL_LOG(info, "raft: leadership handed over before stopping",
            {{"done", rv && *rv == 0}, {"leader", static_cast<int64_t>(v.leader_id)}});
  co_return true;
}

rt::task<int> raft_store::on_loop(std::function<void(node::done_fn)> start) {
  auto channel = rt::oneshot::channel<int>();
  auto tx = std::make_shared<rt::oneshot::sender<int>>(std::move(channel.first));
  start([tx](int rv) { tx->send(rv); });
  auto rv = co_await std::move(channel.second);
  co_return rv ? *rv : RAFT_SHUTDOWN;
}

grpc::Status raft_store::change_status(int raft_status, uint64_t id) const {
  const std::string who = absl::StrCat("member ", id);
  switch (raft_status) {
    case 0:
      return grpc::Status::OK;
    case RAFT_NOTLEADER:
      return not_leader();
    case RAFT_DUPLICATEID:
      return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                          absl::StrCat(who, " exists already; ids are never reused: pick another"));
    case RAFT_DUPLICATEADDRESS:
      return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                          "another member has that address: remove it first");
    case RAFT_BADID:
    case RAFT_NOTFOUND:
      return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("there is no ", who));
    case RAFT_CANTCHANGE:
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "another membership change is under way: retry once it is done");
    case RAFT_NOCONNECTION:
      return grpc::Status(
          grpc::StatusCode::UNAVAILABLE,
          absl::StrCat(who,
                       " is added but could not be reached to catch up, so it does not vote: "
                       "start it (an empty --data_dir, no --raft_bootstrap), then add it "
                       "again"));
    default:
      return grpc::Status(
          grpc::StatusCode::UNAVAILABLE,
          absl::StrCat("the change of ", who, " did not complete (", raft_strerror(raft_status),
                       "); Status shows the members as they stand"));
  }
}

grpc::Status raft_store::members(v1::MembersResponse& resp) const {
  ctx_->fill(resp.mutable_header());
  describe(resp.mutable_replication());
  return grpc::Status::OK;
}

rt::task<grpc::Status> raft_store::change(uint64_t id, std::function<void(node::done_fn)> start,
                                          v1::MembersResponse& resp) {
  const int rv = co_await on_loop(std::move(start));
  if (rv != 0) co_return change_status(rv, id);
  co_return members(resp);
}

rt::task<grpc::Status> raft_store::change_members(const v1::AddMemberRequest& req,
                                                  v1::MembersResponse& resp) {
  member m;
  std::string host;
  std::string port;
  if (req.id() == 0 || !split_host_port(req.peer(), &host, &port) ||
      !split_host_port(req.client(), &host, &port)) {
    co_return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                           "AddMember needs an id of 1 or more, and peer and client as host:port");
  }
  m.id = req.id();
  m.peer = req.peer();
  m.client = req.client();
  if (!leader()) co_return not_leader();
  auto st = co_await change(
      m.id, [&](node::done_fn done) { node_->add(m.id, m.address(), std::move(done)); }, resp);
  co_return st;
}

rt::task<grpc::Status> raft_store::change_members(const v1::RemoveMemberRequest& req,
                                                  v1::MembersResponse& resp) {
  if (!leader()) co_return not_leader();
  if (req.id() == node_->id()) {
    // The leader leaves last: it hands over, and the new leader removes it.
    const int handed =
        co_await on_loop([&](node::done_fn done) { node_->transfer(0, std::move(done)); });
    if (handed != 0) co_return change_status(handed, req.id());
    co_return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                           absl::StrCat(k_not_leading,
                                        " any more: it handed leadership over so that it can be "
                                        "removed; nothing was applied: send RemoveMember to the "
                                        "new leader (metadata shoal-leader)"));
  }
  auto st = co_await change(
      req.id(), [&](node::done_fn done) { node_->remove(req.id(), std::move(done)); }, resp);
  co_return st;
}

rt::task<grpc::Status> raft_store::change_members(const v1::TransferLeadershipRequest& req,
                                                  v1::MembersResponse& resp) {
  if (!leader()) co_return not_leader();
  auto st = co_await change(
      req.id(), [&](node::done_fn done) { node_->transfer(req.id(), std::move(done)); }, resp);
  co_return st;
}

absl::StatusOr<std::pair<uint64_t, std::string>> raft_store::backup() {
  wal::snap_state state;
  uint64_t revision = 0;
  std::promise<bool> copied;
  std::future<bool> copy = copied.get_future();
  const bool queued = node_->run_on_loop([&](bool live) {
    if (live) revision = copy_store(&state);
    copied.set_value(live);
  });
  if (!queued || !copy.get()) {
    return absl::UnavailableError("this replica is stopping: ask another for the snapshot");
  }
  return std::make_pair(revision, wal::encode_snapshot(revision, state, wall_ns()));
}

uint64_t raft_store::copy_store(wal::snap_state* out) const {
  const int64_t now_rt =
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock_->now().time_since_epoch())
          .count();
  const int64_t now_wall = wall_ns();
  out->reserve(ctx_->kv->keys());
  ctx_->kv->for_each([&](const store::entry& e) {
    const store::entry::meta m = e.metadata();
    // Deadlines travel as wall-clock time, as in snapshot().
    out->emplace(std::string(e.key()),
                 wal::snap_entry{.value = std::string(e.value()),
                                 .create_revision = m.create_revision,
                                 .mod_revision = m.mod_revision,
                                 .version = m.version,
                                 .deadline_wall_ns = m.expires_at_ns == 0
                                                         ? int64_t{0}
                                                         : m.expires_at_ns - now_rt + now_wall});
  });
  return ctx_->kv->revision();
}

void raft_store::describe(v1::Replication* out) const {
  const raft_view v = node_->view();
  out->set_id(node_->id());
  switch (v.state) {
    case raft_view::role::leader:
      out->set_role("leader");
      break;
    case raft_view::role::follower:
      out->set_role("follower");
      break;
    case raft_view::role::candidate:
      out->set_role("candidate");
      break;
    case raft_view::role::unavailable:
      out->set_role("unavailable");
      break;
  }
  out->set_term(v.term);
  out->set_leader_id(v.leader_id);
  member leader;
  if (split_address(v.leader_address, &leader)) out->set_leader(leader.client);
  out->set_commit_index(v.commit_index);
  out->set_applied_index(v.applied_index);
  out->set_last_index(v.last_index);
  for (uint64_t id : v.refused) out->add_refused(id);
  for (const std::string& p : v.peer_problems) out->add_peer_problems(p);
  out->set_caught_up(v.caught_up);
  out->set_own_settings_differ(own_settings_differ_.load(std::memory_order_relaxed));
  for (const member& m : v.members) {
    v1::Member* o = out->add_members();
    o->set_id(m.id);
    o->set_peer(m.peer);
    o->set_client(m.client);
  }
}

// ---- the state machine (the Raft thread) ----------------------------------------------------

void raft_store::apply(std::string_view bytes) {
  entry e;
  if (!decode(bytes, &e)) {
    // The same on every replica: skipping it keeps them equal.
    std::string hex;
    for (std::size_t i = 0; i < bytes.size() && i < 80; ++i) {
      absl::StrAppend(&hex, absl::Hex(static_cast<uint8_t>(bytes[i]), absl::kZeroPad2));
    }
    SHOAL_LOG(error, "raft: an entry this version cannot read; skipped on every replica",
              {{"bytes", static_cast<int64_t>(bytes.size())}, {"hex", hex}});
    return;
  }
  switch (e.kind) {
    case entry_kind::init:
      set_store_id(e.body);
      return;
    case entry_kind::expire:
      for (const due_key& d : e.due) ctx_->kv->expire_if(d.key, d.mod_revision);
      return;
    case entry_kind::settings:
      adopt_settings(e.body);
      return;
    case entry_kind::call:
      break;
  }
  // The handlers read their limits through context::current_config(): the log's, here.
  struct applying_with {
    explicit applying_with(const config::snapshot_ptr* cfg) { context::applying_config = cfg; }
    ~applying_with() { context::applying_config = nullptr; }
  } scope(log_settings_ ? &log_settings_ : nullptr);
  if (e.origin == origin_) {
    rt::plain_lock lock(pending_mu_);
    auto it = pending_.find(e.sequence);
    if (it != pending_.end()) {
      grpc::Status st = it->second.run(it->second.call);
      it->second.done.send(std::move(st));
      pending_.erase(it);
      return;
    }
  }
  apply_call(e.method, e.body);
}

void raft_store::apply_call(metrics::method m, std::string_view request) {
  context& ctx = *ctx_;
  switch (m) {
    case metrics::method::put:
      return apply_as(ctx, &handlers::put, request);
    case metrics::method::remove:
      return apply_as(ctx, &handlers::remove, request);
    case metrics::method::increment:
      return apply_as(ctx, &handlers::increment, request);
    case metrics::method::txn:
      return apply_as(ctx, &handlers::txn, request);
    case metrics::method::batch:
      return apply_as(ctx, &handlers::batch, request);
    default:
      SHOAL_LOG(error, "raft: an entry names a call that does not write; skipped");
      return;
  }
}

std::string raft_store::settings_of(const config::snapshot& cfg) {
  // What a call's outcome can depend on: the live limits and the message size. Not this
  // replica's own addresses, files or ids, nor what only the call path or this process reads.
  v1::ServerConfig c;
  *c.mutable_live() = cfg.live();
  c.mutable_live()->clear_auth();
  c.mutable_live()->clear_log_level();
  c.mutable_live()->clear_fsync();
  c.mutable_live()->clear_fsync_interval_ms();
  c.mutable_startup()->set_max_message_bytes(cfg.startup().max_message_bytes());
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);  // the same settings, the same bytes
  c.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

void raft_store::adopt_settings(std::string_view bytes) {
  v1::ServerConfig leaders;
  if (!leaders.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    // The same bytes everywhere: every replica keeps the settings it had.
    SHOAL_LOG(error, "raft: a settings entry does not parse; the previous settings stay");
    return;
  }
  // This replica's configuration with the leader's settings over it (settings_of's fields).
  const config::snapshot_ptr own_cfg = ctx_->current_config();
  auto adopted = std::make_shared<config::snapshot>(*own_cfg);
  adopted->config.mutable_live()->MergeFrom(leaders.live());
  adopted->config.mutable_startup()->set_max_message_bytes(leaders.startup().max_message_bytes());
  adopted->source = own_cfg->source + " with the leader's settings from the Raft log";
  log_settings_ = std::move(adopted);
  log_settings_bytes_ = std::string(bytes);
  compare_own_settings();
}

void raft_store::compare_own_settings() {
  if (log_settings_ == nullptr) return;
  const std::string own = settings_of(*ctx_->current_config());
  own_settings_differ_.store(own != log_settings_bytes_, std::memory_order_relaxed);
  if (own != log_settings_bytes_ && own != differing_logged_) {
    differing_logged_ = own;
    SHOAL_LOG(warn,
              "raft: this replica's own settings differ from the leader's; writes apply here with "
              "the leader's (give every replica the same configuration)");
  }
}

rt::task<> raft_store::publish_settings(rt::watch::receiver<config::snapshot_ptr> rx) {
  std::string last = settings_of(**rx.borrow_and_update());
  for (;;) {
    const bool changed = co_await rx.changed();
    if (!changed) co_return;
    const std::string now = settings_of(**rx.borrow_and_update());
    // Status says whether this replica's own settings still differ from the log's.
    (void)node_->run_on_loop([this](bool live) {
      if (live) compare_own_settings();
    });
    const bool changed_here = now != last;
    last = now;  // a follower's too: once it leads, it proposes them, and a revert is a change
    if (!changed_here || !leader()) continue;  // a new leader proposes its own when it starts
    node_->propose(encode_settings(origin_, 0, wall_ns(), now), [](int) {});
  }
}

std::string raft_store::snapshot() {
  // On the Raft thread, between applies: nothing else writes the store.
  std::string out(k_snapshot_magic, sizeof(k_snapshot_magic));
  put_int(&out, ctx_->kv->revision());
  {
    std::lock_guard lock(id_mu_);
    put_bytes(&out, store_id_);
  }
  put_bytes(&out, log_settings_bytes_);
  const int64_t now_rt =
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock_->now().time_since_epoch())
          .count();
  const int64_t now_wall = wall_ns();
  const std::size_t count_at = out.size();
  put_int(&out, uint64_t{0});
  uint64_t n = 0;
  ctx_->kv->for_each([&](const store::entry& e) {
    const store::entry::meta m = e.metadata();
    put_bytes(&out, e.key());
    put_bytes(&out, e.value());
    put_int(&out, m.create_revision);
    put_int(&out, m.mod_revision);
    put_int(&out, m.version);
    // Deadlines travel as wall-clock time: another machine's runtime clock starts elsewhere.
    put_int(&out, m.expires_at_ns == 0 ? int64_t{0} : m.expires_at_ns - now_rt + now_wall);
    ++n;
  });
  std::memcpy(out.data() + count_at, &n, sizeof(n));
  return out;
}

bool raft_store::restore(std::string_view in) {
  if (in.size() < sizeof(k_snapshot_magic)) return false;
  const bool v1 = std::memcmp(in.data(), k_snapshot_magic_v1, sizeof(k_snapshot_magic_v1)) == 0;
  if (!v1 && std::memcmp(in.data(), k_snapshot_magic, sizeof(k_snapshot_magic)) != 0) return false;
  in.remove_prefix(sizeof(k_snapshot_magic));
  uint64_t revision = 0;
  std::string_view id;
  std::string_view settings;
  uint64_t n = 0;
  if (!get_int(&in, &revision) || !get_bytes(&in, &id) || (!v1 && !get_bytes(&in, &settings)) ||
      !get_int(&in, &n)) {
    return false;
  }

  if (ctx_->kv->keys() > 0 || ctx_->kv->revision() > 0) {
    SHOAL_LOG(warn, "raft: replacing this replica's store with the leader's snapshot",
              {{"revision", std::to_string(revision)}});
    ctx_->kv->clear();
  }
  const int64_t now_rt =
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock_->now().time_since_epoch())
          .count();
  const int64_t now_wall = wall_ns();
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view key;
    std::string_view value;
    store::entry::meta m;
    int64_t deadline = 0;
    if (!get_bytes(&in, &key) || !get_bytes(&in, &value) || !get_int(&in, &m.create_revision) ||
        !get_int(&in, &m.mod_revision) || !get_int(&in, &m.version) || !get_int(&in, &deadline)) {
      return false;
    }
    m.expires_at_ns = deadline == 0 ? 0 : std::max<int64_t>(1, deadline - now_wall + now_rt);
    if (!ctx_->kv->load(key, value, m).ok()) return false;
  }
  if (settings.empty()) {  // none in the log yet: each replica's own, as before any
    log_settings_.reset();
    log_settings_bytes_.clear();
  } else {
    adopt_settings(settings);
  }
  ctx_->hub->reset(revision);
  set_store_id(id);
  return true;
}

void raft_store::leadership_changed(bool leader, node& self) {
  leader_.store(leader, std::memory_order_release);
  leadership_.notify_one();
  if (!leader) return;
  bool has_id = false;
  {
    std::lock_guard lock(id_mu_);
    has_id = !store_id_.empty();
  }
  // A new cluster's first leader names it; a second proposal (a later leader that had not yet
  // applied the first) is ignored where it applies.
  if (!has_id) self.propose_here(encode_init(origin_, 0, wall_ns(), new_store_id()));
  // Before any call it proposes: calls apply with these.
  self.propose_here(encode_settings(origin_, 0, wall_ns(), settings_of(*ctx_->current_config())));
}

}  // namespace shoal::service::replica

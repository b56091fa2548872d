#include "service/replica/node.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "service/log.h"
#include "service/replica/frame.h"
#include "service/replica/transport.h"

namespace shoal::service::replica {
namespace {

// A peer connection's problem not seen again for this long is no longer reported.
constexpr uint64_t k_problem_forgotten_ms = 60'000;

// One raft_apply of the entries queued together: one append, one disk write, one callback.
struct apply_req {
  struct raft_apply req {};
  std::vector<node::done_fn> done;  // each entry's (may be empty)
};

struct barrier_req {
  struct raft_barrier req {};
};

raft_view::role role_of(int state) {
  switch (state) {
    case RAFT_FOLLOWER:
      return raft_view::role::follower;
    case RAFT_CANDIDATE:
      return raft_view::role::candidate;
    case RAFT_LEADER:
      return raft_view::role::leader;
    default:
      return raft_view::role::unavailable;
  }
}

bool directory_empty(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return true;
  bool empty = true;
  while (dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) empty = false;
  }
  ::closedir(d);
  return empty;
}

// Appends `text` to `path` and syncs it (and, for a new file, its directory).
bool append_synced(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string path = dir + "/" + name;
  const bool existed = ::access(path.c_str(), F_OK) == 0;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fdatasync(fd) == 0;
  ::close(fd);
  if (ok && !existed) {
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
  return ok;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

constexpr char k_incarnation_file[] = "raft-incarnation";
constexpr char k_peers_file[] = "raft-peers";

}  // namespace

absl::Status node::load_identity(bool fresh) {
  const std::string& dir = opts_.identity_dir;
  const std::string mine = read_all(dir + "/" + k_incarnation_file);
  if (fresh || mine.empty()) {
    std::random_device rd;
    incarnation_ = ((static_cast<uint64_t>(rd()) << 32) ^ rd()) | 1;
    // A fresh disk forgets its peers too: it learns them again.
    ::unlink((dir + "/" + k_peers_file).c_str());
    ::unlink((dir + "/" + k_incarnation_file).c_str());
    if (!append_synced(dir, k_incarnation_file, std::to_string(incarnation_) + "\n")) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot write ", dir, "/", k_incarnation_file, ": ", std::strerror(errno)));
    }
  } else if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(mine), &incarnation_)) {
    return absl::DataLossError(
        absl::StrCat(dir, "/", k_incarnation_file, " is damaged: it should hold one number"));
  }
  std::istringstream peers(read_all(dir + "/" + k_peers_file));
  uint64_t id = 0;
  uint64_t incarnation = 0;
  while (peers >> id >> incarnation) peers_[id] = incarnation;
  return absl::OkStatus();
}

bool node::admit(uint64_t id, uint64_t incarnation) {
  if (id == id_) return incarnation == incarnation_;
  auto it = peers_.find(id);
  if (it == peers_.end()) {
    peers_[id] = incarnation;
    if (!append_synced(opts_.identity_dir, k_peers_file,
                       absl::StrCat(id, " ", incarnation, "\n"))) {
      SHOAL_LOG(warn, "raft: cannot record a peer's incarnation",
                {{"peer", static_cast<int64_t>(id)}, {"error", std::strerror(errno)}});
    }
    return true;
  }
  if (it->second == incarnation) return true;
  if (refused_.insert({id, incarnation}).second) {
    SHOAL_LOG(
        warn,
        "raft: a replica came back under its old id with another disk (an empty data "
        "directory): refused. Remove it (shoalctl member remove ID) and add it under a new id",
        {{"peer", static_cast<int64_t>(id)}});
  }
  return false;
}

bool node::caught_up(const raft_view& v) {
  if (caught_up_) return true;
  // A leader has everything committed; a follower, once it has applied what its leader had
  // committed when this member connected to it (a follower answers its leader on a connection of
  // its own, so it does connect).
  const auto leader_had = peer_commit_.find(v.leader_id);
  const bool now = v.state == raft_view::role::leader
                       ? v.applied_index >= v.commit_index
                       : leader_had != peer_commit_.end() && v.applied_index >= leader_had->second;
  if (now) {
    caught_up_ = true;
    SHOAL_LOG(info, "raft: this member has caught up",
              {{"applied_index", static_cast<int64_t>(v.applied_index)}});
    if (opts_.on_caught_up) opts_.on_caught_up();
  }
  return now;
}

std::string node::peer_of(uint64_t id) const {
  // The configuration Raft holds (it has the members added since), else the first members.
  for (unsigned i = 0; i < raft_.configuration.n; ++i) {
    member m;
    if (raft_.configuration.servers[i].id == id &&
        split_address(raft_.configuration.servers[i].address, &m)) {
      return m.peer;
    }
  }
  for (const member& m : opts_.members) {
    if (m.id == id) return m.peer;
  }
  return "";
}

void node::peer_problem(const std::string& peer, const std::string& problem) {
  auto it = peer_problems_.find(peer);
  if (problem.empty()) {
    if (it != peer_problems_.end()) {
      SHOAL_LOG(info, "raft: a peer connection succeeded", {{"peer", peer}});
      peer_problems_.erase(it);
    }
    return;
  }
  const uint64_t now = uv_now(&loop_);
  if (it != peer_problems_.end() && it->second.why == problem) {
    it->second.seen_ms = now;
    return;  // logged already
  }
  if (it == peer_problems_.end() && peer_problems_.size() >= 64) return;
  SHOAL_LOG(warn, "raft: a peer connection was refused", {{"peer", peer}, {"why", problem}});
  peer_problems_[peer] = peer_problem_seen{problem, now};
}

node::node(options o) : opts_(std::move(o)), id_(opts_.id) {}

absl::StatusOr<std::unique_ptr<node>> node::start(options o) {
  std::unique_ptr<node> n(new node(std::move(o)));
  if (auto st = n->open(); !st.ok()) return st;
  n->stopped_ = false;
  n->thread_ = std::thread([p = n.get()] { p->run(); });
  return n;
}

absl::Status node::open() {
  const member* self = nullptr;
  for (const member& m : opts_.members) {
    if (m.id == id_) self = &m;
  }
  if (self == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("startup.raft_id ", id_, " is not among startup.raft_members"));
  }
  if (::mkdir(opts_.dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create the Raft directory ", opts_.dir, ": ", std::strerror(errno)));
  }
  if (auto st = load_identity(directory_empty(opts_.dir)); !st.ok()) return st;
  uv_loop_init(&loop_);
  transport_hooks hooks{
      .admit = [this](uint64_t id, uint64_t incarnation) { return admit(id, incarnation); },
      .problem = [this](const std::string& peer,
                        const std::string& problem) { peer_problem(peer, problem); },
      .commit_index = [this] { return static_cast<uint64_t>(raft_.commit_index); },
      .peer_commit = [this](uint64_t id, uint64_t commit) { peer_commit_[id] = commit; },
      .peer_of = [this](uint64_t id) { return peer_of(id); },
      .probe_view = [this] { return probe_view(); },
      .probed_by = [this](uint64_t) { recheck_leader(); },
  };
  transport_init(&transport_, &loop_, opts_.listen.empty() ? self->peer : opts_.listen,
                 incarnation_, std::move(hooks), opts_.tls);
  transport_.data = this;
  if (int rv = raft_uv_init(&io_, &loop_, opts_.dir.c_str(), &transport_); rv != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the Raft log in ", opts_.dir, ": ", io_.errmsg));
  }
  uv_start_ = io_.start;
  io_.start = start_io;
  fsm_.version = 2;
  fsm_.data = this;
  fsm_.apply = fsm_apply;
  fsm_.snapshot = fsm_snapshot;
  fsm_.snapshot_finalize = fsm_finalize;
  fsm_.restore = fsm_restore;
  fsm_.snapshot_async = nullptr;
  const std::string address = self->address();
  if (int rv = raft_init(&raft_, &io_, &fsm_, id_, address.c_str()); rv != 0) {
    return absl::InternalError(absl::StrCat("raft_init: ", raft_strerror(rv)));
  }
  raft_.data = this;
  raft_set_election_timeout(&raft_, opts_.election_ms);
  raft_set_heartbeat_timeout(&raft_, opts_.heartbeat_ms);
  raft_set_snapshot_threshold(&raft_, opts_.snapshot_threshold);
  raft_set_snapshot_trailing(&raft_, opts_.snapshot_trailing);
  // A member cut off and back must not unseat a working leader with its higher term.
  raft_set_pre_vote(&raft_, true);
  if (opts_.bootstrap) {
    raft_configuration conf;
    raft_configuration_init(&conf);
    for (const member& m : opts_.members) {
      raft_configuration_add(&conf, m.id, m.address().c_str(), RAFT_VOTER);
    }
    const int rv = raft_bootstrap(&raft_, &conf);
    raft_configuration_close(&conf);
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {  // CANTBOOTSTRAP: it has state already
      return absl::FailedPreconditionError(
          absl::StrCat("cannot bootstrap the cluster in ", opts_.dir, ": ", raft_strerror(rv)));
    }
  }
  if (int rv = raft_start(&raft_); rv != 0) {
    // libraft leaves its own message empty when the transport failed (its Raft port in use).
    const char* why = *raft_errmsg(&raft_) != '\0' ? raft_errmsg(&raft_) : transport_.errmsg;
    if (*why == '\0') why = raft_strerror(rv);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot start Raft from ", opts_.dir, ": ", why));
  }
  uv_async_init(&loop_, &async_, on_async);
  async_.data = this;
  uv_timer_init(&loop_, &gone_timer_);
  gone_timer_.data = this;
  uv_check_init(&loop_, &check_);
  check_.data = this;
  uv_check_start(&check_, on_check);  // the view is first refreshed on the loop thread
  return absl::OkStatus();
}

node::~node() { stop(); }

void node::run() {
  // A peer that went away turns the next write on its connection into EPIPE, never a SIGPIPE
  // that ends the process (it is raised on the writing thread, this one).
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
}

void node::stop() {
  if (stopped_) return;
  stopped_ = true;
  {
    rt::plain_lock lock(queue_mu_);
    accepting_ = false;
    queue_.push_back(work{work::kind::stop, {}, {}, 0, {}});
  }
  uv_async_send(&async_);
  if (thread_.joinable()) thread_.join();
  raft_uv_close(&io_);
  transport_close(&transport_);
  uv_loop_close(&loop_);
}

bool node::enqueue(work& w) {
  {
    rt::plain_lock lock(queue_mu_);
    if (!accepting_) return false;
    queue_.push_back(std::move(w));
  }
  uv_async_send(&async_);
  return true;
}

void node::propose(std::string entry, done_fn done) {
  work w{work::kind::apply, std::move(entry), std::move(done), 0, {}};
  if (!enqueue(w)) w.done(RAFT_SHUTDOWN);
}

void node::barrier(done_fn done) {
  work w{work::kind::barrier, {}, std::move(done), 0, {}};
  if (!enqueue(w)) w.done(RAFT_SHUTDOWN);
}

void node::transfer(uint64_t id, done_fn done) {
  work w{work::kind::transfer, {}, std::move(done), id, {}};
  if (!enqueue(w)) w.done(RAFT_SHUTDOWN);
}

void node::add(uint64_t id, std::string address, done_fn done) {
  work w{work::kind::add, std::move(address), std::move(done), id, {}};
  if (!enqueue(w)) w.done(RAFT_SHUTDOWN);
}

void node::remove(uint64_t id, done_fn done) {
  work w{work::kind::remove, {}, std::move(done), id, {}};
  if (!enqueue(w)) w.done(RAFT_SHUTDOWN);
}

bool node::run_on_loop(std::function<void(bool)> fn) {
  work w{work::kind::run, {}, {}, 0, std::move(fn)};
  return enqueue(w);
}

namespace {
struct transfer_req {
  struct raft_transfer req {};
  node::done_fn done;
};
struct change_req {
  struct raft_change req {};
  node::done_fn done;
  struct raft* r = nullptr;
  uint64_t id = 0;
  bool then_voter = false;  // an add: assign the voter role once added
};
}  // namespace

void node::start_transfer(uint64_t id, done_fn done) {
  if (closing_) return done(RAFT_SHUTDOWN);
  auto* t = new transfer_req();
  t->req.data = t;
  t->done = std::move(done);
  const int rv = raft_transfer(&raft_, &t->req, id, [](struct raft_transfer* req) {
    auto* self = static_cast<transfer_req*>(req->data);
    self->done(0);
    delete self;
  });
  if (rv != 0) {
    t->done(rv);
    delete t;
  }
}

void node::start_change(work w) {
  if (closing_) return w.done(RAFT_SHUTDOWN);
  auto* c = new change_req();
  c->req.data = c;
  c->done = std::move(w.done);
  c->r = &raft_;
  c->id = w.id;
  static constexpr raft_change_cb finished = [](struct raft_change* req, int status) {
    auto* self = static_cast<change_req*>(req->data);
    if (status == 0 && self->then_voter) {
      // Added as a spare; promoted once it has caught up (libraft runs the catch-up rounds).
      self->then_voter = false;
      const int rv = raft_assign(self->r, &self->req, self->id, RAFT_VOTER, finished);
      if (rv == 0) return;
      status = rv;
    }
    self->done(status);
    delete self;
  };
  int rv = 0;
  if (w.type == work::kind::add) {
    // Added before and not yet a voter (its catch-up failed: it was not running): promote it.
    const raft_server* known = nullptr;
    for (unsigned i = 0; i < raft_.configuration.n; ++i) {
      if (raft_.configuration.servers[i].id == w.id) known = &raft_.configuration.servers[i];
    }
    if (known != nullptr && known->role != RAFT_VOTER && w.entry == known->address) {
      rv = raft_assign(&raft_, &c->req, w.id, RAFT_VOTER, finished);
    } else {
      c->then_voter = true;
      rv = raft_add(&raft_, &c->req, w.id, w.entry.c_str(), finished);
    }
  } else {
    rv = raft_remove(&raft_, &c->req, w.id, finished);
  }
  if (rv != 0) {
    c->done(rv);
    delete c;
  }
}

void node::on_async(uv_async_t* a) { static_cast<node*>(a->data)->drain(); }

void node::drain() {
  std::vector<work> taken;
  {
    rt::plain_lock lock(queue_mu_);
    taken.swap(queue_);
  }
  bool stop = false;
  std::vector<std::string> entries;  // consecutive proposals, appended together
  std::vector<done_fn> dones;
  auto flush = [&] {
    if (entries.empty()) return;
    submit_apply(std::move(entries), std::move(dones));
    entries.clear();
    dones.clear();
  };
  for (work& w : taken) {
    if (w.type != work::kind::apply) flush();
    switch (w.type) {
      case work::kind::apply:
        entries.push_back(std::move(w.entry));
        dones.push_back(std::move(w.done));
        break;
      case work::kind::barrier:
        if (closing_) {
          w.done(RAFT_SHUTDOWN);
        } else {
          reads_waiting_.push_back(std::move(w.done));
        }
        break;
      case work::kind::transfer:
        start_transfer(w.id, std::move(w.done));
        break;
      case work::kind::add:
      case work::kind::remove:
        start_change(std::move(w));
        break;
      case work::kind::run:
        w.fn(!closing_);
        break;
      case work::kind::stop:
        stop = true;
        break;
    }
  }
  flush();
  if (!barrier_in_flight_ && !reads_waiting_.empty()) start_barrier();
  if (stop) begin_close();
}

void node::submit_apply(std::vector<std::string> entries, std::vector<done_fn> dones) {
  // Consecutive proposals share an entry (frame.h); each entry is a raft_apply of its own, as
  // libraft calls a request back once, when its first entry applies.
  std::vector<std::size_t> counts;
  entries = frame_entries(std::move(entries), &counts);
  auto next = dones.begin();
  for (std::size_t e = 0; e < entries.size(); ++e) {
    const auto end = next + static_cast<std::ptrdiff_t>(counts[e]);
    submit_entry(std::move(entries[e]),
                 std::vector<done_fn>(std::make_move_iterator(next), std::make_move_iterator(end)));
    next = end;
  }
}

void node::submit_entry(std::string entry, std::vector<done_fn> dones) {
  auto fail_all = [&](int rv) {
    for (auto& d : dones) {
      if (d) d(rv);
    }
  };
  if (closing_) return fail_all(RAFT_SHUTDOWN);
  // libraft's disk log stores a payload in whole 8-byte words and reads it back as such: a
  // payload of another length shifts every entry after it in the same batch. Padded here, with
  // zeros (frame.h and entry.h's decode accept them).
  raft_buffer buf;
  buf.len = std::max<std::size_t>(8, (entry.size() + 7) / 8 * 8);
  buf.base = raft_malloc(buf.len);
  std::memset(buf.base, 0, buf.len);
  std::memcpy(buf.base, entry.data(), entry.size());
  auto* r = new apply_req();
  r->req.data = this;
  r->done = std::move(dones);
  if (int rv = raft_apply(&raft_, &r->req, &buf, 1, on_applied); rv != 0) {
    raft_free(buf.base);
    dones = std::move(r->done);
    delete r;
    fail_all(rv);
  }
}

void node::propose_here(std::string entry) {
  std::vector<std::string> one;
  one.push_back(std::move(entry));
  submit_apply(std::move(one), std::vector<done_fn>(1));
}

void node::on_applied(struct raft_apply* req, int status, void*) {
  auto* r = reinterpret_cast<apply_req*>(req);
  for (auto& d : r->done) {
    if (d) d(status);
  }
  delete r;
}

void node::start_barrier() {
  auto* b = new barrier_req();
  b->req.data = this;
  reads_in_flight_.swap(reads_waiting_);
  barrier_in_flight_ = true;
  if (int rv = raft_barrier(&raft_, &b->req, on_barrier); rv != 0) {
    delete b;
    barrier_in_flight_ = false;
    std::vector<done_fn> failed;
    failed.swap(reads_in_flight_);
    for (auto& f : failed) f(rv);
  }
}

void node::on_barrier(struct raft_barrier* req, int status) {
  auto* self = static_cast<node*>(req->data);
  delete reinterpret_cast<barrier_req*>(req);
  self->barrier_in_flight_ = false;
  std::vector<done_fn> done;
  done.swap(self->reads_in_flight_);
  for (auto& f : done) f(status);
  // The reads that came meanwhile get the next barrier from on_check, after this turn of the
  // loop: not from here, inside libraft — a failed barrier is called back while the leader steps
  // down, and a barrier started then used the leader's state as it was freed (a SIGSEGV).
}

void node::begin_close() {
  if (closing_) return;
  closing_ = true;
  std::vector<done_fn> waiting;
  waiting.swap(reads_waiting_);
  for (auto& f : waiting) f(RAFT_SHUTDOWN);
  raft_close(&raft_, on_closed);
}

void node::on_closed(struct raft* r) {
  auto* self = static_cast<node*>(r->data);
  uv_close(reinterpret_cast<uv_handle_t*>(&self->async_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&self->check_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&self->gone_timer_), nullptr);
  // Work queued after the last drain: nothing will run it.
  std::vector<work> left;
  {
    rt::plain_lock lock(self->queue_mu_);
    left.swap(self->queue_);
  }
  for (work& w : left) {
    if (w.done) w.done(RAFT_SHUTDOWN);
    if (w.fn) w.fn(false);
  }
}

void node::on_check(uv_check_t* c) {
  auto* self = static_cast<node*>(c->data);
  self->refresh();
  if (!self->closing_ && !self->barrier_in_flight_ && !self->reads_waiting_.empty()) {
    self->start_barrier();
  }
}

void node::refresh() {
  if (closing_) return;
  raft_view v;
  v.state = role_of(raft_state(&raft_));
  v.term = raft_.current_term;
  publish_term();
  raft_id leader = 0;
  const char* address = nullptr;
  raft_leader(&raft_, &leader, &address);
  v.leader_id = leader;
  if (address != nullptr) v.leader_address = address;
  // Counted on each leader after a time without one too: the same leader elected again is a
  // change (an overloaded leader that keeps losing its term).
  if (leader != last_leader_) {
    if (leader != 0) ++leader_changes_;
    last_leader_ = leader;
  }
  v.leader_changes = leader_changes_;
  v.dead_leader_elections = dead_leader_elections_;
  v.commit_index = raft_.commit_index;
  v.applied_index = raft_last_applied(&raft_);
  v.last_index = raft_last_index(&raft_);
  v.caught_up = caught_up(v);
  for (unsigned i = 0; i < raft_.configuration.n; ++i) {
    member m;
    m.id = raft_.configuration.servers[i].id;
    if (!split_address(raft_.configuration.servers[i].address, &m)) {
      m.peer = raft_.configuration.servers[i].address;
    }
    v.members.push_back(std::move(m));
  }
  // A refused member stays listed while it is a member: removed (and replaced), it is settled.
  for (const auto& [id, incarnation] : refused_) {
    const bool listed = std::any_of(v.members.begin(), v.members.end(),
                                    [id = id](const member& m) { return m.id == id; });
    if (listed && (v.refused.empty() || v.refused.back() != id)) v.refused.push_back(id);
  }
  const uint64_t now = uv_now(&loop_);
  for (auto it = peer_problems_.begin(); it != peer_problems_.end();) {
    if (now - it->second.seen_ms > k_problem_forgotten_ms) {
      it = peer_problems_.erase(it);
      continue;
    }
    v.peer_problems.push_back(absl::StrCat(it->first, ": ", it->second.why));
    ++it;
  }
  watch_leader(v);
  const bool leader_now = v.state == raft_view::role::leader;
  {
    rt::plain_lock lock(view_mu_);
    view_ = std::move(v);
  }
  if (leader_now != was_leader_) {
    was_leader_ = leader_now;
    SHOAL_LOG(info, leader_now ? "raft: this member leads" : "raft: this member follows",
              {{"term", std::to_string(raft_.current_term)}});
    opts_.fsm->leadership_changed(leader_now, *this);
  }
}

int node::fsm_apply(raft_fsm* fsm, const raft_buffer* buf, void** result) {
  auto* self = static_cast<node*>(fsm->data);
  const std::string_view entry(static_cast<const char*>(buf->base), buf->len);
  self->publish_term();
  self->applied(entry.size());
  if (!for_each_payload(entry, [self](std::string_view p) { self->opts_.fsm->apply(p); })) {
    SHOAL_LOG(error, "raft: a framed entry does not parse; skipped on every replica",
              {{"bytes", static_cast<int64_t>(entry.size())}});
  }
  *result = nullptr;
  return 0;
}

void node::publish_term() {
  if (opts_.term != nullptr) opts_.term->store(raft_.current_term, std::memory_order_relaxed);
}

void node::applied(std::size_t bytes) {
  applied_bytes_ += bytes;
  recent_sizes_.push_back(static_cast<uint32_t>(bytes));
  if (recent_sizes_.size() > opts_.snapshot_trailing) recent_sizes_.pop_front();
  if (!snapshot_due_ && applied_bytes_ >= opts_.log_max_bytes / 2) {
    snapshot_due_ = true;
    raft_set_snapshot_threshold(&raft_, 1);  // libraft looks after this apply
  }
}

void node::restore_threshold() {
  if (!snapshot_due_) return;
  snapshot_due_ = false;
  raft_set_snapshot_threshold(&raft_, opts_.snapshot_threshold);
}

void node::snapshot_taken() {
  applied_bytes_ = 0;
  restore_threshold();
  // libraft reads the trailing count after this (to write the snapshot, then to cut the log).
  // The newest entries that fit in the other half. Entries older than those this process
  // applied (read from disk at start) are of unknown size, and go.
  uint64_t kept = 0;
  unsigned entries = 0;
  for (auto it = recent_sizes_.rbegin(); it != recent_sizes_.rend(); ++it) {
    if (kept + *it > opts_.log_max_bytes / 2) break;
    kept += *it;
    ++entries;
  }
  raft_set_snapshot_trailing(&raft_, std::max(1u, entries));
}

int node::fsm_snapshot(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n) {
  auto* self = static_cast<node*>(fsm->data);
  self->snapshot_taken();
  const std::string state = self->opts_.fsm->snapshot();
  auto* b = static_cast<raft_buffer*>(raft_malloc(sizeof(raft_buffer)));
  b->len = state.size();
  b->base = raft_malloc(state.size() == 0 ? 1 : state.size());
  std::memcpy(b->base, state.data(), state.size());
  *bufs = b;
  *n = 1;
  return 0;
}

int node::fsm_finalize(raft_fsm*, raft_buffer* bufs[], unsigned* n) {
  for (unsigned i = 0; i < *n; ++i) raft_free((*bufs)[i].base);
  raft_free(*bufs);
  *bufs = nullptr;
  *n = 0;
  return 0;
}

int node::fsm_restore(raft_fsm* fsm, raft_buffer* buf) {
  auto* self = static_cast<node*>(fsm->data);
  const bool ok =
      self->opts_.fsm->restore(std::string_view(static_cast<const char*>(buf->base), buf->len));
  if (!ok) return RAFT_MALFORMED;
  self->applied_bytes_ = 0;  // the log before the snapshot is gone
  self->recent_sizes_.clear();
  self->restore_threshold();
  raft_free(buf->base);
  return 0;
}

}  // namespace shoal::service::replica

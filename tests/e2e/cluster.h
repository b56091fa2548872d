// cluster: three (or n) real shoald replicas on loopback, for the replication tests.
//
//   cluster c(3);                       // started together; returns once all serve
//   int l = c.leader();                 // waits until one replica says it leads
//   c.kill(l);                          // SIGKILL
//   c.restart(l);                       // same data directory and ports
//   auto kv = c.at(0)->kv();        // null when replica 0 is not running
//
// Each replica has fixed ports (the members list names them): free ones are found by binding
// port 0 and letting go. Elections are generous (1 s): three replicas share two cores.
// In `extra` flags, "{id}" stands for each replica's raft id (its own certificate files, say).
// cluster::own_hosts puts replica i's Raft port on 127.0.0.(i+1), a host of its own, so that a
// certificate can name one replica and not the others.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/shoald_process.h"
#include "tests/e2e/tcp_proxy.h"

namespace shoal::testing {

// A port nothing listens on, for a replica to take later. Picked below the kernel's ephemeral
// range (net.ipv4.ip_local_port_range, 32768-60999 by default): a port from that range can be
// taken meanwhile as the source port of an outgoing connection — replicas dialling a peer that
// is not up yet make hundreds — and the replica's listen would then fail. Each port is handed
// out once per test process.
inline int free_port() {
  static std::mutex mu;
  static std::set<int> given;
  static std::mt19937 rng(static_cast<unsigned>(::getpid()));
  std::lock_guard lock(mu);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const int port = 20000 + static_cast<int>(rng() % 12000);  // 20000-31999
    if (given.count(port) > 0) continue;
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (!free) continue;
    given.insert(port);
    return port;
  }
  throw std::runtime_error("free_port: no free port in 20000-31999");
}

class cluster {
 public:
  // proxied: each replica's Raft port behind a tcp_proxy, for net() to cut links.
  struct proxied_t {};
  static constexpr proxied_t proxied{};
  explicit cluster(int n = 3, std::vector<std::string> extra = {}) : extra_(std::move(extra)) {
    init(n, false);
  }
  cluster(proxied_t, int n = 3, std::vector<std::string> extra = {}) : extra_(std::move(extra)) {
    init(n, true);
  }
  struct own_hosts_t {};
  static constexpr own_hosts_t own_hosts{};
  cluster(own_hosts_t, int n = 3, std::vector<std::string> extra = {}) : extra_(std::move(extra)) {
    init(n, false, true);
  }
  partition& net() { return net_; }
  std::vector<uint64_t> ids_except(int i) const {
    std::vector<uint64_t> out;
    for (int k = 0; k < size(); ++k) {
      if (k != i) out.push_back(replicas_[k].id);
    }
    return out;
  }
  uint64_t id(int i) const { return replicas_.at(i).id; }

 private:
  void init(int n, bool with_proxies, bool own_hosts = false) {
    for (int i = 0; i < n; ++i) {
      replica r;
      r.id = i + 1;
      r.client = "127.0.0.1:" + std::to_string(free_port());
      const int peer_port = free_port();
      r.peer = (own_hosts ? "127.0.0." + std::to_string(i + 1) : std::string("127.0.0.1")) + ":" +
               std::to_string(peer_port);
      if (with_proxies) {
        const int raft_port = free_port();
        r.raft_listen = "127.0.0.1:" + std::to_string(raft_port);
        proxies_.push_back(std::make_unique<tcp_proxy>(r.id, peer_port, raft_port, &net_));
      }
      r.dir = temp_dir();
      replicas_.push_back(std::move(r));
    }
    for (const replica& r : replicas_) {
      if (!members_.empty()) members_ += ",";
      members_ += std::to_string(r.id) + "=" + r.peer + "/" + r.client;
    }
    std::vector<int> all;
    for (int i = 0; i < n; ++i) all.push_back(i);
    start(all);
  }

 public:
  cluster(const cluster&) = delete;
  cluster& operator=(const cluster&) = delete;
  ~cluster() {
    // A replica that ended while it was meant to run (a crash) fails the test that ran it.
    const std::vector<std::string> ended = ended_replicas();
    if (!ended.empty()) {
      std::string all;
      for (const std::string& e : ended) all += "\n  " + e;
      ADD_FAILURE() << "replicas ended on their own:" << all;
    }
    for (replica& r : replicas_) r.process.reset();  // SIGKILL
    for (replica& r : replicas_) run_command("rm -rf " + r.dir);
  }

  int size() const { return static_cast<int>(replicas_.size()); }
  // The replicas meant to run (not killed, terminated or not yet started) whose process has
  // ended, each with how ("replica 1 (id 2): exit 139" is a SIGSEGV).
  std::vector<std::string> ended_replicas() {
    std::vector<std::string> out;
    std::lock_guard lock(mu_);
    for (std::size_t i = 0; i < replicas_.size(); ++i) {
      int status = 0;
      auto& p = replicas_[i].process;
      if (p != nullptr && p->ended(&status)) {
        out.push_back("replica " + std::to_string(i) + " (id " + std::to_string(replicas_[i].id) +
                      "): exit " + std::to_string(status) +
                      (status > 128 ? " (signal " + std::to_string(status - 128) + ")" : ""));
      }
    }
    return out;
  }
  // Thread-safe: writers call replicas while the test kills and restarts them. A null pointer:
  // not running.
  std::shared_ptr<shoald_process> at(int i) const {
    std::lock_guard lock(mu_);
    return replicas_.at(i).process;
  }
  bool running(int i) const { return at(i) != nullptr; }
  const std::string& client_address(int i) const { return replicas_.at(i).client; }
  const std::string& data_dir(int i) const { return replicas_.at(i).dir; }
  // The replica whose client address is `address`, or -1.
  int index_of(const std::string& address) const {
    for (int i = 0; i < size(); ++i) {
      if (replicas_[i].client == address) return i;
    }
    return -1;
  }

  v1::Replication status(int i) {
    v1::StatusResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    auto p = at(i);
    if (p == nullptr || p->address().empty() ||  // not serving: started detached
        !p->admin()->Status(&ctx, v1::StatusRequest(), &resp).ok()) {
      return {};
    }
    return resp.replication();
  }

  // Waits (up to `within`) until a running replica leads; its index, or -1.
  int leader(std::chrono::seconds within = std::chrono::seconds(30)) {
    const auto deadline = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < deadline) {
      for (int i = 0; i < size(); ++i) {
        if (running(i) && status(i).role() == "leader") return i;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }

  // SIGTERM (a drain), and wait until it is gone: its exit code.
  int terminate(int i) {
    std::shared_ptr<shoald_process> p;
    {
      std::lock_guard lock(mu_);
      p.swap(replicas_.at(i).process);
    }
    return p->terminate();
  }
  // SIGKILL, and wait until it is gone.
  void kill(int i) {
    std::shared_ptr<shoald_process> p;
    {
      std::lock_guard lock(mu_);
      p.swap(replicas_.at(i).process);
    }
    p->signal(SIGKILL);
    p->wait_exit(std::chrono::seconds(10));
  }
  // Starts replica i again on its data directory (returns once it serves: it needs a leader).
  void restart(int i) { start({i}); }
  // Starts replica i again without waiting for it to serve (it may never: a refused replica).
  void start_detached(int i) {
    auto p = std::make_shared<shoald_process>(shoald_process::started_later, args(replicas_[i]));
    std::lock_guard lock(mu_);
    replicas_[i].process = std::move(p);
  }
  // Empties replica i's data directory (a replaced disk); it must not be running.
  void wipe(int i) { run_command("rm -rf " + replicas_.at(i).dir + "/*"); }
  // Starts replica i as a new member, `id`, on an empty data directory, with the same ports
  // (the members list names it so); the leader must have added it (Admin/AddMember).
  // `add` runs once it is forked, before it is awaited (it serves only once added).
  void start_as_new_member(int i, uint64_t id, const std::function<void()>& add) {
    wipe(i);
    replicas_.at(i).id = id;
    replicas_.at(i).bootstrap = false;
    members_.clear();
    for (const replica& r : replicas_) {
      if (!members_.empty()) members_ += ",";
      members_ += std::to_string(r.id) + "=" + r.peer + "/" + r.client;
    }
    start({i}, add);
  }
  const std::string& peer_address(int i) const { return replicas_.at(i).peer; }

 private:
  struct replica {
    uint64_t id = 0;
    std::string client;
    std::string peer;
    std::string dir;
    std::string raft_listen;                  // behind a proxy: where Raft really listens
    bool bootstrap = true;                    // a first member (a replacement joins instead)
    std::shared_ptr<shoald_process> process;  // guarded by mu_
  };

  std::vector<std::string> args(const replica& r) const {
    std::vector<std::string> a = {"--listen=" + r.client,
                                  "--data_dir=" + r.dir,
                                  "--raft_id=" + std::to_string(r.id),
                                  "--raft_members=" + members_,
                                  "--raft_election_ms=1000",
                                  "--raft_heartbeat_ms=100",
                                  "--workers=1",
                                  "--shutdown_grace_seconds=2"};
    if (r.bootstrap) a.push_back("--raft_bootstrap");
    if (!r.raft_listen.empty()) a.push_back("--raft_listen=" + r.raft_listen);
    for (std::string flag : extra_) {
      for (auto at = flag.find("{id}"); at != std::string::npos; at = flag.find("{id}")) {
        flag.replace(at, 4, std::to_string(r.id));
      }
      a.push_back(std::move(flag));
    }
    return a;
  }

  // A replica prints where it listens once it knows the cluster's store id, which takes a
  // majority: the replicas are forked together (by this thread), then awaited each on a thread.
  void start(const std::vector<int>& which, const std::function<void()>& then = nullptr) {
    std::vector<std::shared_ptr<shoald_process>> forked;
    for (int i : which) {
      forked.push_back(
          std::make_shared<shoald_process>(shoald_process::started_later, args(replicas_[i])));
    }
    if (then) then();
    std::vector<std::thread> waiting;
    std::vector<std::string> errors(which.size());
    for (std::size_t k = 0; k < which.size(); ++k) {
      waiting.emplace_back([&errors, &forked, k] {
        try {
          forked[k]->wait_listening();
        } catch (const std::exception& e) {
          errors[k] = e.what();
        }
      });
    }
    for (auto& t : waiting) t.join();
    for (const auto& e : errors) {
      if (!e.empty()) throw std::runtime_error("a replica did not start: " + e);
    }
    std::lock_guard lock(mu_);
    for (std::size_t k = 0; k < which.size(); ++k) replicas_[which[k]].process = forked[k];
  }

  std::vector<std::string> extra_;
  partition net_;
  std::vector<std::unique_ptr<tcp_proxy>> proxies_;
  mutable std::mutex mu_;
  std::vector<replica> replicas_;
  std::string members_;
};

}  // namespace shoal::testing

// tcp_proxy: a replica's Raft port behind a proxy the test controls, for network faults.
//
// Each replica advertises the proxy's port as its peer address and listens for Raft on another
// (--raft_listen); the proxy forwards. A connection's first bytes name the replica that opened it
// (replica/transport.h's introduction: magic, then its Raft id), so the proxy can cut the link
// from one replica to another in one direction: a partition is a set of cut directions.
//
//   partition net;                        // shared by every proxy of a cluster
//   tcp_proxy p(/*to=*/2, listen_port, raft_port, &net);
//   net.cut(1, 2);                        // replica 1 no longer reaches replica 2
//   net.delay(30ms);                      // every byte on every link held 30 ms first
//   net.heal();                           // every link again, undelayed
//
// Cutting closes the connections already open between the two, and refuses new ones. A delay
// holds what each link carries, in order, until it is due (a slow network: nothing reordered).
#pragma once

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace shoal::testing {

class partition {
 public:
  void cut(uint64_t from, uint64_t to) {
    std::lock_guard lock(mu_);
    cut_.insert({from, to});
    ++generation_;
  }
  // Both directions between `a` and everyone else.
  void isolate(uint64_t a, const std::vector<uint64_t>& others) {
    for (uint64_t o : others) {
      cut(a, o);
      cut(o, a);
    }
  }
  void heal() {
    std::lock_guard lock(mu_);
    cut_.clear();
    delay_ = std::chrono::milliseconds(0);
    ++generation_;
  }
  void delay(std::chrono::milliseconds d) {
    std::lock_guard lock(mu_);
    delay_ = d;
  }
  std::chrono::milliseconds delay() const {
    std::lock_guard lock(mu_);
    return delay_;
  }
  bool is_cut(uint64_t from, uint64_t to) const {
    std::lock_guard lock(mu_);
    return cut_.count({from, to}) != 0;
  }
  uint64_t generation() const {
    std::lock_guard lock(mu_);
    return generation_;
  }

 private:
  mutable std::mutex mu_;
  std::set<std::pair<uint64_t, uint64_t>> cut_;
  uint64_t generation_ = 0;
  std::chrono::milliseconds delay_{0};
};

class tcp_proxy {
 public:
  tcp_proxy(uint64_t to, int listen_port, int target_port, const partition* net)
      : to_(to), target_port_(target_port), net_(net) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a = loopback(listen_port);
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listener_, 64) != 0) {
      throw std::runtime_error("tcp_proxy: cannot listen on " + std::to_string(listen_port));
    }
    ::pipe(wake_);
    thread_ = std::thread([this] { run(); });
  }
  tcp_proxy(const tcp_proxy&) = delete;
  tcp_proxy& operator=(const tcp_proxy&) = delete;
  ~tcp_proxy() {
    stop_ = true;
    (void)::write(wake_[1], "x", 1);
    thread_.join();
    for (auto& l : links_) close_link(l);
    ::close(listener_);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

 private:
  using clk = std::chrono::steady_clock;
  // Bytes read, held until they are due (a delay), per direction.
  using held = std::deque<std::pair<clk::time_point, std::string>>;
  struct link {
    int in = -1;        // from the connecting replica
    int out = -1;       // to this replica's Raft port
    uint64_t from = 0;  // 0 until the introduction is read
    std::vector<char> hello;
    held to_replica;  // in -> out
    held to_sender;   // out -> in
  };

  static sockaddr_in loopback(int port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    return a;
  }
  static void close_link(link& l) {
    if (l.in >= 0) ::close(l.in);
    if (l.out >= 0) ::close(l.out);
    l.in = l.out = -1;
  }
  static bool send_all(int to, const char* buf, std::size_t n) {
    for (std::size_t off = 0; off < n;) {
      const ssize_t w = ::send(to, buf + off, n - off, MSG_NOSIGNAL);
      if (w <= 0) return false;
      off += static_cast<std::size_t>(w);
    }
    return true;
  }
  // Reads what `from` has and forwards it to `to`, or holds it in `q` while links are delayed.
  bool pump(int from, int to, held& q) {
    char buf[65536];
    const ssize_t n = ::read(from, buf, sizeof buf);
    if (n <= 0) return false;
    const auto d = net_->delay();
    if (d.count() == 0 && q.empty()) return send_all(to, buf, static_cast<std::size_t>(n));
    q.emplace_back(clk::now() + d, std::string(buf, static_cast<std::size_t>(n)));
    return true;
  }
  // Forwards what is due; false if the link broke.
  static bool release(int to, held& q) {
    const auto now = clk::now();
    while (!q.empty() && q.front().first <= now) {
      if (!send_all(to, q.front().second.data(), q.front().second.size())) return false;
      q.pop_front();
    }
    return true;
  }
  // How long poll may wait: 50 ms (a cut also takes effect between reads), or less when held
  // bytes fall due sooner.
  int poll_ms() const {
    auto wait = std::chrono::milliseconds(50);
    const auto now = clk::now();
    for (const auto& l : links_) {
      for (const held* q : {&l.to_replica, &l.to_sender}) {
        if (q->empty()) continue;
        wait = std::min(
            wait, std::chrono::duration_cast<std::chrono::milliseconds>(q->front().first - now) +
                      std::chrono::milliseconds(1));
      }
    }
    return static_cast<int>(std::max<int64_t>(wait.count(), 0));
  }

  void run() {
    uint64_t seen_generation = net_->generation();
    while (!stop_) {
      std::vector<pollfd> fds = {{listener_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      for (auto& l : links_) {
        fds.push_back({l.in, POLLIN, 0});
        fds.push_back({l.out, POLLIN, 0});
      }
      ::poll(fds.data(), fds.size(), poll_ms());
      if (stop_) return;
      if (fds[0].revents & POLLIN) accept_one();
      for (std::size_t i = 0; i < links_.size(); ++i) {
        link& l = links_[i];
        const short in_ev = fds[2 + 2 * i].revents;
        const short out_ev = fds[3 + 2 * i].revents;
        bool ok = true;
        if (in_ev & (POLLIN | POLLHUP | POLLERR))
          ok = l.from == 0 ? introduce(l) : pump(l.in, l.out, l.to_replica);
        if (ok && (out_ev & (POLLIN | POLLHUP | POLLERR))) ok = pump(l.out, l.in, l.to_sender);
        if (ok) ok = release(l.out, l.to_replica) && release(l.in, l.to_sender);
        if (ok && l.from != 0 && net_->is_cut(l.from, to_)) ok = false;
        if (!ok) close_link(l);
      }
      if (net_->generation() != seen_generation) {
        seen_generation = net_->generation();
        for (auto& l : links_) {
          if (l.from != 0 && net_->is_cut(l.from, to_)) close_link(l);
        }
      }
      std::erase_if(links_, [](const link& l) { return l.in < 0; });
    }
  }

  void accept_one() {
    const int in = ::accept(listener_, nullptr, nullptr);
    if (in < 0) return;
    const int out = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = loopback(target_port_);
    if (::connect(out, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(in);
      ::close(out);
      return;
    }
    link l;
    l.in = in;
    l.out = out;
    links_.push_back(std::move(l));
  }

  // Reads the introduction's first 16 bytes (magic, sender id), forwards them, and decides.
  bool introduce(link& l) {
    char buf[16];
    const ssize_t n = ::read(l.in, buf, 16 - l.hello.size());
    if (n <= 0) return false;
    l.hello.insert(l.hello.end(), buf, buf + n);
    if (l.hello.size() < 16) return true;
    std::memcpy(&l.from, l.hello.data() + 8, 8);
    if (l.from == 0 || net_->is_cut(l.from, to_)) return false;
    return ::send(l.out, l.hello.data(), 16, MSG_NOSIGNAL) == 16;
  }

  const uint64_t to_;
  const int target_port_;
  const partition* net_;
  int listener_ = -1;
  int wake_[2] = {-1, -1};
  std::atomic<bool> stop_{false};
  std::vector<link> links_;  // the proxy's thread only
  std::thread thread_;
};

}  // namespace shoal::testing

// tcp_proxy: forwards loopback TCP connections to a server, and can cut them all at once — a
// dropped connection, as a client sees it when a load balancer or the network lets go.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace shoal::testing {

class tcp_proxy {
 public:
  // target: "127.0.0.1:PORT".
  explicit tcp_proxy(const std::string& target) {
    target_.sin_family = AF_INET;
    target_.sin_port =
        htons(static_cast<uint16_t>(std::stoi(target.substr(target.rfind(':') + 1))));
    inet_pton(AF_INET, "127.0.0.1", &target_.sin_addr);
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in any{};
    any.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &any.sin_addr);
    socklen_t len = sizeof any;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&any), len) != 0 ||
        ::listen(listen_fd_, 16) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&any), &len) != 0) {
      throw std::runtime_error("tcp_proxy: cannot listen");
    }
    port_ = ntohs(any.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~tcp_proxy() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    acceptor_.join();
    cut();
    for (auto& t : pumps_) t.join();
    ::close(listen_fd_);
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int accepted() const { return accepted_; }

  // Drops every open connection (both ends); new connections are still accepted.
  void cut() {
    std::lock_guard lock(mu_);
    for (int fd : open_) ::shutdown(fd, SHUT_RDWR);
  }

 private:
  void accept_loop() {
    while (!stopping_) {
      int client = ::accept(listen_fd_, nullptr, nullptr);
      if (client < 0) return;
      int server = ::socket(AF_INET, SOCK_STREAM, 0);
      if (::connect(server, reinterpret_cast<const sockaddr*>(&target_), sizeof target_) != 0) {
        ::close(client);
        ::close(server);
        continue;
      }
      ++accepted_;
      std::lock_guard lock(mu_);
      open_.insert(client);
      open_.insert(server);
      pumps_.emplace_back([this, client, server] { pump(client, server); });
    }
  }

  // Copies bytes both ways until either side closes, then closes both.
  void pump(int a, int b) {
    pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    char buf[16384];
    for (bool open = true; open;) {
      if (::poll(fds, 2, 1000) < 0) break;
      for (int i = 0; i < 2 && open; ++i) {
        if (fds[i].revents == 0) continue;
        const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
        if (n <= 0) {
          open = false;
          break;
        }
        for (ssize_t sent = 0; sent < n;) {
          // MSG_NOSIGNAL: a side that has just closed (the cut, or a server that stopped) must
          // end the pump, not raise SIGPIPE in the test process.
          const ssize_t w =
              ::send(fds[1 - i].fd, buf + sent, static_cast<size_t>(n - sent), MSG_NOSIGNAL);
          if (w <= 0) {
            open = false;
            break;
          }
          sent += w;
        }
      }
    }
    std::lock_guard lock(mu_);
    open_.erase(a);
    open_.erase(b);
    ::close(a);
    ::close(b);
  }

  sockaddr_in target_{};
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  std::mutex mu_;
  std::set<int> open_;
  std::vector<std::thread> pumps_;
  std::thread acceptor_;
};

}  // namespace shoal::testing

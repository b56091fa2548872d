// shoald_process: a real shoald on an ephemeral loopback port, for end-to-end tests.
//
//   shoald_process s({"--max_keys=10"});
//   auto kv = s.kv();            // generated stub over a real channel
//   s.terminate();               // SIGTERM; exit_code() once it is gone
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"
#include "shoal/v1/admin.grpc.pb.h"
#include "shoal/v1/kv.grpc.pb.h"

// Process-level tests (crash loops, clusters, latency ratios) run in the Release build only:
// under a sanitizer they take minutes and measure the sanitizer. `why` says which kind it is.
//   TEST(x, y) { SHOAL_RELEASE_ONLY("a crash loop"); ... }
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SHOAL_RELEASE_ONLY(why) GTEST_SKIP() << why << ": run in the Release build"
#else
#define SHOAL_RELEASE_ONLY(why) (void)0
#endif

namespace shoal::testing {

// The shoald binary next to the test binary's build tree (set by CMake).
inline std::string shoald_path() { return SHOALD_PATH; }

class shoald_process {
 public:
  // Metrics on a port of its own (--metrics_listen=127.0.0.1:0) unless `args` say otherwise:
  // the default port, 9090, would be shared by every test's server.
  explicit shoald_process(std::vector<std::string> args = {}) {
    start(shoald_path(), with_metrics_port(std::move(args)));
  }
  // shoald's own default for metrics (127.0.0.1:9090).
  struct no_metrics_flag_t {};
  static constexpr no_metrics_flag_t no_metrics_flag{};
  shoald_process(no_metrics_flag_t, std::vector<std::string> args) {
    start(shoald_path(), std::move(args));
  }
  // Its log (stderr) to a file, for tests that read what it logs.
  struct stderr_file {
    std::string path;
  };
  shoald_process(stderr_file log, std::vector<std::string> args) : stderr_path_(log.path) {
    start(shoald_path(), with_metrics_port(std::move(args)));
  }
  // Forked now, awaited later (wait_listening()): replicas that print where they listen only
  // once a majority of them runs are started together, each forked by the test's main thread
  // (PR_SET_PDEATHSIG follows the forking thread: a helper thread's exit would kill it).
  struct started_later_t {};
  static constexpr started_later_t started_later{};
  shoald_process(started_later_t, std::vector<std::string> args) {
    const std::vector<std::string> all = with_metrics_port(std::move(args));
    fork_and_exec(shoald_path(), all);
    args_ = all;
  }
  // From any thread, once: reads where the server listens (see start()).
  void wait_listening() { read_addresses(args_); }
  // Another build of shoald (a test-only one).
  shoald_process(std::string binary, std::vector<std::string> args) {
    start(std::move(binary), with_metrics_port(std::move(args)));
  }
  ~shoald_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  shoald_process(const shoald_process&) = delete;
  shoald_process& operator=(const shoald_process&) = delete;

  const std::string& address() const { return address_; }
  // Where /metrics is served ("" with --metrics_listen= empty: none).
  const std::string& metrics_address() const { return metrics_address_; }
  // Where health checks are served in plaintext (--probe_listen), or "".
  const std::string& probe_address() const { return probe_address_; }
  pid_t pid() const { return pid_; }

  // Thread-safe: tests open stubs from several threads at once.
  std::shared_ptr<grpc::Channel> channel() {
    std::lock_guard lock(channel_mu_);
    if (!channel_) {
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(64 << 20);
      channel_ = grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args);
    }
    return channel_;
  }
  std::unique_ptr<v1::KV::Stub> kv() { return v1::KV::NewStub(channel()); }
  // A channel on a connection of its own (gRPC otherwise shares one between equal channels): a
  // second client, whose traffic does not queue behind the first's on one HTTP/2 connection.
  std::shared_ptr<grpc::Channel> new_connection() {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args);
  }
  std::unique_ptr<v1::Admin::Stub> admin() { return v1::Admin::NewStub(channel()); }
  std::unique_ptr<grpc::health::v1::Health::Stub> health() {
    return grpc::health::v1::Health::NewStub(channel());
  }

  // Sends SIGTERM and waits for the exit (at most `within`). Returns the exit status, or -1.
  int terminate(std::chrono::seconds within = std::chrono::seconds(30)) {
    signal(SIGTERM);
    return wait_exit(within);
  }
  // To the process, if it has not ended (never to pid -1: every process).
  void signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }
  int wait_exit(std::chrono::seconds within) {
    const auto deadline = std::chrono::steady_clock::now() + within;
    while (pid_ > 0 && std::chrono::steady_clock::now() < deadline) {
      if (reaped()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return exit_status_;
  }
  // Whether the process has ended (nobody waits for it otherwise: a crash shows here), and how:
  // its exit code, or 128 + the signal that ended it.
  bool ended(int* status = nullptr) {
    if (pid_ > 0) reaped();
    if (status != nullptr) *status = exit_status_;
    return pid_ <= 0 && exit_status_ >= 0;
  }

 private:
  void start(std::string binary, std::vector<std::string> args) {
    fork_and_exec(std::move(binary), args);
    read_addresses(args);
  }

  void fork_and_exec(std::string binary, const std::vector<std::string>& args) {
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      // A test binary that crashes must not leave its server behind (it would hold the test
      // runner's output pipe open until the runner's timeout).
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::dup2(out[1], STDOUT_FILENO);
      if (!stderr_path_.empty()) {
        const int log = ::open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (log >= 0) ::dup2(log, STDERR_FILENO);
      }
      ::close(out[0]);
      ::close(out[1]);
      std::vector<std::string> all = {binary, "--listen=127.0.0.1:0"};
      all.insert(all.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      std::perror("execv shoald");
      std::_Exit(127);
    }
    ::close(out[1]);
    out_fd_ = out[0];
  }

  void read_addresses(const std::vector<std::string>& args) {
    // The first line says where it listens.
    FILE* f = ::fdopen(out_fd_, "r");
    char line[256] = {};
    if (std::fgets(line, sizeof line, f) == nullptr) {
      std::fclose(f);
      throw std::runtime_error("shoald did not start (see its stderr above)");
    }
    address_ = after(line, "listening on ");
    // The metrics endpoint, unless turned off, is the second line.
    bool metrics = true;
    for (const auto& a : args) {
      if (a.rfind("--metrics_listen", 0) == 0) metrics = a != "--metrics_listen=";
    }
    if (metrics && std::fgets(line, sizeof line, f) != nullptr) {
      metrics_address_ = after(line, "metrics on ");
    }
    // The plaintext health port, when asked for, the line after.
    for (const auto& a : args) {
      if (a.rfind("--probe_listen=", 0) == 0 && std::fgets(line, sizeof line, f) != nullptr) {
        probe_address_ = after(line, "probes on ");
      }
    }
    std::fclose(f);
  }

  static std::vector<std::string> with_metrics_port(std::vector<std::string> args) {
    for (const auto& a : args) {
      if (a.rfind("--metrics_listen", 0) == 0) return args;
    }
    args.insert(args.begin(), "--metrics_listen=127.0.0.1:0");
    return args;
  }

  static std::string after(const std::string& line, const std::string& marker) {
    const auto at = line.find(marker);
    if (at == std::string::npos) throw std::runtime_error("unexpected shoald output: " + line);
    std::string rest = line.substr(at + marker.size());
    while (!rest.empty() && (rest.back() == '\n' || rest.back() == '\r')) rest.pop_back();
    return rest;
  }

  pid_t pid_ = -1;
  int exit_status_ = -1;  // once reaped

  // Reaps the process if it has ended; whether it did.
  bool reaped() {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
    pid_ = -1;
    exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return true;
  }
  int out_fd_ = -1;                // its stdout, until read_addresses()
  std::vector<std::string> args_;  // started_later: for wait_listening()
  std::string stderr_path_;
  std::string address_;
  std::string metrics_address_;
  std::string probe_address_;
  std::mutex channel_mu_;
  std::shared_ptr<grpc::Channel> channel_;  // guarded by channel_mu_
};

// A fresh directory under /tmp, for config files and the like.
inline std::string temp_dir() {
  char tmpl[] = "/tmp/shoal-test-XXXXXX";
  return ::mkdtemp(tmpl);
}

// Runs shoald with `args` until it exits (for cases that must refuse to start): its exit code
// and everything it printed, stdout and stderr. `timeout` stops a shoald that wrongly starts
// after 10 s (exit 124: the test fails).
// Runs a shell command line to its end: its exit code and everything it printed (with 2>&1).
inline std::pair<int, std::string> run_command(const std::string& cmd) {
  FILE* f = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
  const int status = ::pclose(f);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

inline std::pair<int, std::string> run_to_exit(const std::string& args) {
  return run_command("timeout 10 " + shoald_path() +
                     " --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 " + args + " 2>&1");
}

// Resident memory of a process (VmRSS), in bytes; 0 if it is gone.
inline uint64_t rss_bytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Does what the kubelet does to a mounted ConfigMap or Secret: the files in a new timestamped
// directory, then an atomic swap of the `..data` symlink. The files a server reads are links
// `dir/name -> ..data/name` (make_kubelet_links).
inline void kubelet_swap(const std::string& dir,
                         const std::vector<std::pair<std::string, std::string>>& files,
                         int generation) {
  const std::string ts = "..2026_11_26_" + std::to_string(generation);
  ::mkdir((dir + "/" + ts).c_str(), 0755);
  for (const auto& [name, text] : files) write_file(dir + "/" + ts + "/" + name, text);
  ::unlink((dir + "/..data_tmp").c_str());
  if (::symlink(ts.c_str(), (dir + "/..data_tmp").c_str()) != 0 ||
      ::rename((dir + "/..data_tmp").c_str(), (dir + "/..data").c_str()) != 0) {
    throw std::runtime_error("kubelet_swap: cannot swap ..data in " + dir);
  }
}

inline void make_kubelet_links(const std::string& dir, const std::vector<std::string>& names) {
  for (const auto& n : names) {
    if (::symlink(("..data/" + n).c_str(), (dir + "/" + n).c_str()) != 0) {
      throw std::runtime_error("make_kubelet_links: " + n);
    }
  }
}

// Polls `p` until it holds or `within` has passed; whether it held.
template <class Pred>
bool eventually(Pred p, std::chrono::milliseconds within = std::chrono::milliseconds(5000)) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    if (p()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return p();
}

// GET http://ADDRESS/metrics with a plain socket: the body, or "" on failure.
inline std::string scrape(const std::string& address) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1))));
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  std::string reply;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0) {
    const std::string req = "GET /metrics HTTP/1.0\r\nHost: shoald\r\n\r\n";
    if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[8192];
      for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
        reply.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  const auto body = reply.find("\r\n\r\n");
  return body == std::string::npos ? "" : reply.substr(body + 4);
}

// The value of the sample that starts with `series` (name and labels), or -1.
inline double sample(const std::string& text, const std::string& series) {
  for (std::size_t at = text.find(series); at != std::string::npos;
       at = text.find(series, at + 1)) {
    if (at > 0 && text[at - 1] != '\n') continue;
    const auto value = at + series.size();
    if (text[value] != ' ') continue;
    return std::stod(text.substr(value + 1, text.find('\n', value) - value - 1));
  }
  return -1;
}

// A context with a deadline, so that no test can hang on a call.
inline std::unique_ptr<grpc::ClientContext> ctx(
    std::chrono::milliseconds deadline = std::chrono::milliseconds(10'000)) {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + deadline);
  return c;
}

}  // namespace shoal::testing

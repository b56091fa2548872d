// shoal-rt-demo: the runtime at work, until shoald exists. A manager task owns a counter map and
// serves requests from an mpsc channel with oneshot replies; clients run concurrently; a watch
// channel publishes progress; SIGINT/SIGTERM stop it. Prints a line per second.
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "runtime/runtime.h"
#include "runtime/sync/mpsc.h"
#include "runtime/sync/oneshot.h"
#include "runtime/sync/select.h"
#include "runtime/sync/watch.h"
#include "runtime/time/sleep.h"

namespace rt = shoal::rt;
using namespace std::chrono_literals;

namespace {

struct increment {
  std::string key;
  rt::oneshot::sender<long> reply;
};

rt::task<> manager(rt::mpsc::receiver<increment> rx, rt::watch::sender<long> progress) {
  absl::flat_hash_map<std::string, long> counters;
  long total = 0;
  while (std::optional<increment> req = co_await rx.recv()) {
    long v = ++counters[req->key];
    req->reply.send(v);
    if (++total % 1000 == 0) progress.send_replace(total);
  }
}

rt::task<> client(rt::mpsc::sender<increment> tx, int id) {
  for (long i = 0;; ++i) {
    auto [reply_tx, reply_rx] = rt::oneshot::channel<long>();
    increment req{"key-" + std::to_string((id + i) % 16), std::move(reply_tx)};
    if (!co_await tx.send(std::move(req))) co_return;
    if (!co_await std::move(reply_rx)) co_return;
  }
}

rt::task<> report(rt::watch::receiver<long> progress) {
  rt::interval tick(1s);
  long last = 0;
  for (;;) {
    co_await tick.tick();
    long now = *progress.borrow_and_update();
    std::printf("shoal-rt-demo: %ld requests/s through a manager task\n", now - last);
    std::fflush(stdout);
    last = now;
  }
}

}  // namespace

int main() {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  rt::runtime_options options;
  options.workers = 2;
  rt::runtime runtime(options);
  auto [tx, rx] = rt::mpsc::channel<increment>(1024);
  auto [progress_tx, progress_rx] = rt::watch::channel<long>(0);
  runtime.spawn(manager(std::move(rx), std::move(progress_tx))).detach();
  for (int i = 0; i < 8; ++i) runtime.spawn(client(tx, i)).detach();
  runtime.spawn(report(std::move(progress_rx))).detach();
  std::printf("shoal-rt-demo: running on 2 workers; Ctrl-C stops\n");
  int sig = 0;
  sigwait(&stop, &sig);
  runtime.shutdown();  // cancels every task and waits for them
  std::printf("shoal-rt-demo: stopped cleanly\n");
  return 0;
}

// plain_driver: a worker parker with no I/O, built on a condition variable.
#pragma once

#include <condition_variable>
#include <mutex>

#include "runtime/executor/driver.h"

namespace shoal::rt {

class plain_driver final : public driver {
 public:
  void park(std::optional<time_point> deadline) override {
    std::unique_lock lock(mu_);
    if (deadline) {
      cv_.wait_until(lock, *deadline, [&] { return notified_; });
    } else {
      cv_.wait(lock, [&] { return notified_; });
    }
    notified_ = false;
  }
  bool poll() override { return false; }
  void unpark() override {
    {
      std::lock_guard lock(mu_);
      notified_ = true;
    }
    cv_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool notified_ = false;
};

}  // namespace shoal::rt

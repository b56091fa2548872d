// cancellation_token: tells tasks to stop, once, with children. Shoal's
// tokio_util::sync::CancellationToken.
//
// One owner cancels; any number of tasks check is_cancelled() or await cancelled(), usually as a
// select branch beside their real work. A child token is cancelled with its parent (and its own
// children with it), and can be cancelled alone without touching the parent: a server's token,
// each stream's child, each stream's helper tasks' grandchildren.
//
//   rt::cancellation_token server_stop;
//   rt::cancellation_token stream_stop = server_stop.child_token();
//   // in the stream's task:
//   auto r = co_await rt::select(rx.recv(), stream_stop.cancelled());
//   if (r.index() == 1) co_return unavailable("shutting down");
//   // at shutdown:
//   server_stop.cancel();  // every child and grandchild too
//
// (tests/runtime/header_examples_test.cc compiles and runs this example.)
//
// Copies share one token (as clones do in Tokio). Cancelling is idempotent; a token cancelled
// before anyone awaits it completes their awaits at once. Cancel safety: a cancelled await of
// cancelled() leaves no waiter behind. Cost: one allocation per token (a child's also links
// itself into its parent until it is dropped).
#pragma once

#include <atomic>
#include <coroutine>
#include <memory>
#include <utility>

#include "runtime/internal/coop.h"
#include "runtime/internal/spin_lock.h"
#include "runtime/sync/notify.h"

namespace shoal::rt {

namespace detail {
class token_state : public std::enable_shared_from_this<token_state> {
 public:
  token_state() = default;
  // A child of `parent`, linked into its list (or born cancelled). Made only through here: the
  // link needs the child's own shared_ptr to exist first (cancel() locks it from the list).
  static std::shared_ptr<token_state> make_child(std::shared_ptr<token_state> parent);
  ~token_state();
  token_state(const token_state&) = delete;
  token_state& operator=(const token_state&) = delete;

  void cancel();
  bool is_cancelled() const noexcept { return cancelled_.load(std::memory_order_acquire); }
  notify& on_cancel() noexcept { return cancelled_notify_; }

 private:
  std::atomic<bool> cancelled_{false};
  notify cancelled_notify_;
  std::shared_ptr<token_state> parent_;  // keeps the parent (and its list) alive
  // Children link themselves here while they live; the parent only cancels them.
  spin_lock mu_;
  token_state* first_child_ ABSL_GUARDED_BY(mu_) = nullptr;
  token_state* prev_sibling_ = nullptr;  // guarded by the parent's mu_
  token_state* next_sibling_ = nullptr;  // guarded by the parent's mu_
};
}  // namespace detail

class cancellation_token {
 public:
  cancellation_token() : s_(std::make_shared<detail::token_state>()) {}

  // A token cancelled with this one (and its ancestors), which can also be cancelled alone.
  cancellation_token child_token() const {
    return cancellation_token(detail::token_state::make_child(s_));
  }

  void cancel() const { s_->cancel(); }
  bool is_cancelled() const noexcept { return s_->is_cancelled(); }

  class cancelled_awaiter {
   public:
    bool await_ready() { return s_->is_cancelled() || n_.await_ready(); }
    bool await_suspend(std::coroutine_handle<> h) {
      return !s_->is_cancelled() && n_.await_suspend(h);
    }
    void await_resume() { n_.await_resume(); }
    cancelled_awaiter(cancelled_awaiter&& o) noexcept : s_(o.s_), n_(std::move(o.n_)) {}

   private:
    friend class cancellation_token;
    // The waiter exists before the flag is read: a cancel after that read notifies it.
    explicit cancelled_awaiter(detail::token_state* s)
        : s_(s), n_(std::move(s->on_cancel().notified().inner())) {}
    detail::token_state* s_;
    notify::notified_awaiter n_;
  };

  // Completes once the token is cancelled. The token must outlive the await.
  detail::coop::budgeted<cancelled_awaiter> cancelled() const {
    return detail::coop::budgeted<cancelled_awaiter>(cancelled_awaiter(s_.get()));
  }

  // A guard that cancels this token when destroyed (see cancellation_drop_guard).
  class cancellation_drop_guard guard() const;

 private:
  friend class cancellation_drop_guard;
  explicit cancellation_token(std::shared_ptr<detail::token_state> s) : s_(std::move(s)) {}
  std::shared_ptr<detail::token_state> s_;
};

// Cancels its token when destroyed: for a scope whose exit, however it happens, must stop the
// tasks it started.
class [[nodiscard]] cancellation_drop_guard {
 public:
  explicit cancellation_drop_guard(cancellation_token t) : t_(std::move(t)) {}
  cancellation_drop_guard(cancellation_drop_guard&&) = default;
  ~cancellation_drop_guard() {
    if (t_.s_) t_.cancel();
  }
  // Keeps the token uncancelled after all.
  cancellation_token disarm() { return std::move(t_); }

 private:
  cancellation_token t_;
};

inline cancellation_drop_guard cancellation_token::guard() const {
  return cancellation_drop_guard(*this);
}

}  // namespace shoal::rt

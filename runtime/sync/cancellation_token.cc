#include "runtime/sync/cancellation_token.h"

#include <vector>

namespace shoal::rt::detail {

token_state::token_state(std::shared_ptr<token_state> parent) : parent_(std::move(parent)) {
  // Under the parent's lock: either the parent's cancel already set its flag (we are born
  // cancelled), or its walk over the children comes after us and finds us.
  spin_guard lock(parent_->mu_);
  if (parent_->is_cancelled()) {
    cancelled_.store(true, std::memory_order_release);
    return;
  }
  next_sibling_ = parent_->first_child_;
  if (next_sibling_ != nullptr) next_sibling_->prev_sibling_ = this;
  parent_->first_child_ = this;
}

token_state::~token_state() {
  if (!parent_) return;
  spin_guard lock(parent_->mu_);
  if (prev_sibling_ != nullptr) {
    prev_sibling_->next_sibling_ = next_sibling_;
  } else if (parent_->first_child_ == this) {
    parent_->first_child_ = next_sibling_;
  }
  if (next_sibling_ != nullptr) next_sibling_->prev_sibling_ = prev_sibling_;
}

void token_state::cancel() {
  if (cancelled_.exchange(true, std::memory_order_acq_rel)) return;
  cancelled_notify_.notify_waiters();
  // Children are cancelled outside the lock; one being destroyed right now is skipped (nothing
  // can await it any more).
  std::vector<std::shared_ptr<token_state>> children;
  {
    spin_guard lock(mu_);
    for (token_state* c = first_child_; c != nullptr; c = c->next_sibling_) {
      if (auto alive = c->weak_from_this().lock()) children.push_back(std::move(alive));
    }
  }
  for (auto& c : children) c->cancel();
}

}  // namespace shoal::rt::detail

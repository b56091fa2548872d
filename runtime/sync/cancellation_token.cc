#include "runtime/sync/cancellation_token.h"

#include <vector>

namespace shoal::rt::detail {

std::shared_ptr<token_state> token_state::make_child(std::shared_ptr<token_state> parent) {
  auto child = std::make_shared<token_state>();
  child->parent_ = std::move(parent);
  token_state& p = *child->parent_;
  // Under the parent's lock: either the parent's cancel already set its flag (the child is born
  // cancelled), or its walk over the children comes after this and finds the child.
  spin_guard lock(p.mu_);
  if (p.is_cancelled()) {
    child->cancelled_.store(true, std::memory_order_release);
    return child;
  }
  child->next_sibling_ = p.first_child_;
  if (child->next_sibling_ != nullptr) child->next_sibling_->prev_sibling_ = child.get();
  p.first_child_ = child.get();
  return child;
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

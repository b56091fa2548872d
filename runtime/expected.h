// expected<T, E>: a value or an error, for results whose error carries data (a lagged count, a
// task's exception). A small subset of C++23's std::expected, which g++ 12 does not ship.
//
//   rt::expected<int, rt::join_error> r = co_await handle;
//   if (!r) { if (r.error().is_cancelled()) ...; }
//   int v = *r;
#pragma once

#include <exception>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

namespace shoal::rt {

template <class E>
class unexpected {
 public:
  explicit unexpected(E e) : error_(std::move(e)) {}
  E& error() & { return error_; }
  E&& error() && { return std::move(error_); }

 private:
  E error_;
};

// Thrown by value() on an expected that holds an error.
template <class E>
class bad_expected_access : public std::exception {
 public:
  explicit bad_expected_access(E e) : error_(std::move(e)) {}
  const E& error() const { return error_; }
  const char* what() const noexcept override { return "expected holds an error"; }

 private:
  E error_;
};

template <class T, class E>
class [[nodiscard]] expected {
 public:
  template <class U = T, class = std::enable_if_t<std::is_constructible_v<T, U&&>>>
  expected(U&& v) : v_(std::in_place_index<0>, std::forward<U>(v)) {}  // NOLINT: implicit
  expected(unexpected<E> e) : v_(std::in_place_index<1>, std::move(e).error()) {}  // NOLINT

  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & {
    check();
    return std::get<0>(v_);
  }
  T&& value() && {
    check();
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return std::get<0>(v_); }
  T&& operator*() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const E& error() const& { return std::get<1>(v_); }
  E&& error() && { return std::get<1>(std::move(v_)); }

 private:
  void check() const {
    if (!has_value()) throw bad_expected_access<E>(std::get<1>(v_));
  }
  std::variant<T, E> v_;
};

template <class E>
class [[nodiscard]] expected<void, E> {
 public:
  expected() = default;
  expected(unexpected<E> e) : error_(std::move(e).error()) {}  // NOLINT: implicit

  bool has_value() const noexcept { return !error_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }
  void value() const {
    if (error_) throw bad_expected_access<E>(*error_);
  }
  const E& error() const& { return *error_; }

 private:
  std::optional<E> error_;
};

}  // namespace shoal::rt

// Result<T>: the one error style of the project (see STYLE.md, "Errors").
//
// A function that can fail returns Result<T>, which holds either a value or an Error. An Error
// carries a message meant for the operator: it names the object and the field at fault
// ("Service default/web: spec.ports[1].port: must be between 1 and 65535, got 70000").
// Callers add context on the way up with Error::withContext(), outermost last.
//
// GCC 12 in C++20 mode has no std::expected; this is the small subset of it we need.
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace capstan {

class Error {
 public:
  explicit Error(std::string message) : message_(std::move(message)) {}

  const std::string& message() const { return message_; }

  // Returns this error with `context` in front: "context: message".
  [[nodiscard]] Error withContext(std::string_view context) const {
    std::string out;
    out.reserve(context.size() + 2 + message_.size());
    out.append(context).append(": ").append(message_);
    return Error(std::move(out));
  }

  bool operator==(const Error&) const = default;

 private:
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  // The value, or `fallback` when this holds an error.
  template <typename U>
  T value_or(U&& fallback) const& {
    return ok() ? std::get<0>(v_) : static_cast<T>(std::forward<U>(fallback));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit by design

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  Error error_{""};
  bool ok_ = true;
};

using Status = Result<void>;

inline Status okStatus() { return Status(); }

}  // namespace capstan

// result<T>: the return type of everything that can fail on input.
//
// An error carries a code (mapped to an LSP / JSON-RPC error code at the protocol boundary) and a message
// meant for a person: it names the file, tensor, field or position that was wrong. Exceptions are kept for
// start-up and model load, where they are caught at the boundary and turned into such a message.
// Header-only; values are plain data and safe to move between threads.
#pragma once

#include <cassert>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace qcoder {

enum class errc {
  invalid_argument,   // bad flag, bad parameter, position out of range
  parse_error,        // malformed JSON, malformed header
  not_found,          // missing file, missing tensor, missing model
  corrupt_data,       // truncated or inconsistent checkpoint / cache file
  unsupported,        // a dtype, model type or feature we do not handle
  io_error,           // the OS said no
  cancelled,          // a std::stop_token fired
  conflict,           // the data changed under us (a file edited since it was read)
  unavailable,        // a server we depend on is down, refused, or busy past our retries
  internal,           // a bug: an invariant did not hold
};

const char* to_string(errc code);

struct error {
  errc code = errc::internal;
  std::string message;
};

// Builds an error with a fmt-style message: `return fail(errc::not_found, "no tensor {}", name);`
template <typename... Args>
error fail(errc code, fmt::format_string<Args...> format, Args&&... args) {
  return error{code, fmt::format(format, std::forward<Args>(args)...)};
}

template <typename T>
class [[nodiscard]] result {
 public:
  result(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  result(error err) : state_(std::in_place_index<1>, std::move(err)) {}  // NOLINT: implicit by design

  bool has_value() const { return state_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & { assert(has_value()); return std::get<0>(state_); }
  const T& value() const& { assert(has_value()); return std::get<0>(state_); }
  T&& value() && { assert(has_value()); return std::get<0>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const error& err() const { assert(!has_value()); return std::get<1>(state_); }
  error&& take_error() { assert(!has_value()); return std::get<1>(std::move(state_)); }

 private:
  std::variant<T, error> state_;
};

// result<void>: success carries nothing.
template <>
class [[nodiscard]] result<void> {
 public:
  result() = default;
  result(error err) : err_(std::move(err)), ok_(false) {}  // NOLINT: implicit by design

  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const error& err() const { assert(!ok_); return err_; }
  error&& take_error() { assert(!ok_); return std::move(err_); }

 private:
  error err_;
  bool ok_ = true;
};

inline result<void> ok() { return {}; }

}  // namespace qcoder

// Propagates an error out of the current function: `QCODER_TRY(auto header, parse_header(bytes));`
#define QCODER_CONCAT_INNER(a, b) a##b
#define QCODER_CONCAT(a, b) QCODER_CONCAT_INNER(a, b)
#define QCODER_TRY_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                     \
  if (!tmp) return tmp.take_error();     \
  decl = std::move(tmp).value()
#define QCODER_TRY(decl, expr) QCODER_TRY_IMPL(QCODER_CONCAT(qcoder_try_, __LINE__), decl, expr)
// Same for result<void>: `QCODER_CHECK(validate(config));`
#define QCODER_CHECK(expr)                                            \
  do {                                                                \
    if (auto qcoder_check_result = (expr); !qcoder_check_result)      \
      return qcoder_check_result.take_error();                        \
  } while (0)

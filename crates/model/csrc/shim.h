// What every file of the shim shares: each exported function catches C++ exceptions and
// reports them through fgstp_last_error() (shim.cpp); `guarded` does that around its body.

#pragma once

#include <exception>
#include <string>

namespace fgstp {
// The message of the last failure on this thread.
extern thread_local std::string last_error;

// Runs `f`: 0 if it returned, 1 if it threw (its message kept in last_error).
template <typename F>
int guarded(F&& f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    last_error = e.what();
  } catch (...) {
    last_error = "unknown C++ exception";
  }
  return 1;
}
}  // namespace fgstp

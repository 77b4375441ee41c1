// What the C++ shims share (see embedded_shim.rs): C++ exceptions must not cross into Rust, so every
// entry point runs its body through `guarded`, which writes the exception's message into `err` (at
// most `n` bytes, NUL-terminated) and returns non-zero.
#pragma once

#include <cstring>
#include <exception>
#include <string>

namespace unas_shim {

inline void put(char* err, size_t n, const std::string& msg) {
  if (err == nullptr || n == 0) return;
  size_t len = msg.size() < n - 1 ? msg.size() : n - 1;
  std::memcpy(err, msg.data(), len);
  err[len] = '\0';
}

template <class F>
int guarded(char* err, size_t n, F f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    put(err, n, e.what());
  } catch (...) {
    put(err, n, "unknown C++ exception");
  }
  return 1;
}

}  // namespace unas_shim

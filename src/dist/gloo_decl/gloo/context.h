// See README.md. ProcessGroupGloo::setTimeout (inline) calls Context::setTimeout; the shim never
// calls it, so only the declaration is needed to parse the header.
#pragma once
#include <chrono>

namespace gloo {
class Context {
 public:
  void setTimeout(std::chrono::milliseconds timeout);
};
}  // namespace gloo

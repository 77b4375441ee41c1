// The handles the two c10d shims share (`shim.cpp`: stores, Gloo and the collectives; `nccl.cpp`:
// the NCCL backend added to a group). Both libraries are compiled against the same libtorch headers,
// so a handle made by one is read by the other.
#pragma once

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

namespace unas_dist {

struct Store {
  c10::intrusive_ptr<c10d::Store> store;
};

// The ranks of one run. Gloo carries CPU tensors (and CUDA tensors, staged through the host, where
// there is no NCCL); NCCL, once added, carries CUDA tensors.
struct Group {
  c10::intrusive_ptr<c10d::Backend> gloo;
  c10::intrusive_ptr<c10d::Backend> nccl;  // null until `unas_dist_add_nccl`
  int rank;
  int world;
  bool nccl_failed = false;  // a collective on NCCL failed: abort its communicators, never shut down
};

}  // namespace unas_dist

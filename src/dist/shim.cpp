// libtorch's c10d (stores, the Gloo process group, its collectives), which tch does not bind, as a
// C ABI for `src/dist/c10d.rs`. A group's CUDA tensors go through NCCL once `nccl.cpp` (a library of
// its own, needing libtorch_cuda) has added it to the group, through Gloo otherwise. Built by build.rs into a shared library that the binary embeds and
// `dlopen`s only when a run has more than one rank; its undefined symbols (c10d::TCPStore,
// c10d::ProcessGroupGloo, ...) resolve against the libtorch_cpu.so this process already loaded.
//
// The wheel ships c10d's headers but not Gloo's: `gloo_decl/` declares the few Gloo types that
// ProcessGroupGloo.hpp names (all held behind pointers), so the class has its real layout and every
// Gloo call is libtorch's own.
//
// Tensors cross as `at::Tensor*` (torch-sys's `tensor`). Every function catches C++ exceptions (they
// must not cross into Rust) and writes the message into `err` (at most `n` bytes, NUL-terminated),
// returning non-zero / null on failure. Every collective waits at most `timeout_ms`.

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <chrono>
#include <string>
#include <vector>

#include "../embedded_shim.h"
#include "handles.h"

namespace {

using unas_dist::Group;
using unas_dist::Store;
using unas_shim::guarded;

std::chrono::milliseconds ms(int64_t timeout_ms) { return std::chrono::milliseconds(timeout_ms); }

// The backend for tensors on `device`: NCCL for CUDA tensors once the group has it, Gloo otherwise.
c10d::Backend& backend_for(Group& g, const at::Device& device) {
  return device.is_cuda() && g.nccl ? *g.nccl : *g.gloo;
}

// Starts a collective on `backend` and waits for it at most `timeout` (NCCL: the CPU waits too, as
// `unas_dist_add_nccl` sets blocking wait); a peer that left or a timeout throws, with c10d's
// message. A failure on NCCL marks the group, whose communicators are then aborted when it is freed.
template <class Start>
void collective(Group& g, c10d::Backend& backend, std::chrono::milliseconds timeout, Start start) {
  try {
    if (!start(backend)->wait(timeout)) {
      throw std::runtime_error("the collective did not finish within the timeout");
    }
  } catch (...) {
    if (g.nccl && &backend == g.nccl.get()) g.nccl_failed = true;
    throw;
  }
}

// All-reduces (sum) one bucket: tensors of one dtype and device, flattened into one buffer.
void all_reduce_bucket(Group& g, const std::vector<at::Tensor>& bucket,
                       std::chrono::milliseconds timeout) {
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::SUM;
  opts.timeout = timeout;
  auto& backend = backend_for(g, bucket[0].device());
  auto sum = [&](std::vector<at::Tensor>& ts) {
    collective(g, backend, timeout, [&](c10d::Backend& b) { return b.allreduce(ts, opts); });
  };
  if (bucket.size() == 1 && bucket[0].is_contiguous()) {
    std::vector<at::Tensor> one{bucket[0]};
    sum(one);
    return;
  }
  std::vector<at::Tensor> flat_parts;
  flat_parts.reserve(bucket.size());
  for (const auto& t : bucket) flat_parts.push_back(t.reshape({-1}));
  std::vector<at::Tensor> flat{at::cat(flat_parts)};
  sum(flat);
  int64_t offset = 0;
  for (const auto& t : bucket) {
    t.copy_(flat[0].narrow(0, offset, t.numel()).view(t.sizes()));
    offset += t.numel();
  }
}

}  // namespace

extern "C" {

// The ABI version Rust checks before using anything else.
int unas_dist_abi() { return 2; }

// A TCPStore at host:port: the server (rank 0 of `world`) or a client; waits at most `timeout_ms`
// for the server and, on the server, for the other `world - 1` ranks to connect.
void* unas_dist_tcp_store(const char* host, int port, int world, int is_server,
                          int64_t timeout_ms, char* err, size_t n) {
  Store* s = nullptr;
  guarded(err, n, [&] {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(port);
    opts.isServer = is_server != 0;
    opts.numWorkers = static_cast<std::size_t>(world);
    opts.waitWorkers = true;
    opts.timeout = ms(timeout_ms);
    s = new Store{c10::make_intrusive<c10d::TCPStore>(std::string(host), opts)};
  });
  return s;
}

// A FileStore at `path` (a shared filesystem) for `world` ranks.
void* unas_dist_file_store(const char* path, int world, int64_t timeout_ms, char* err, size_t n) {
  Store* s = nullptr;
  guarded(err, n, [&] {
    auto store = c10::make_intrusive<c10d::FileStore>(std::string(path), world);
    store->setTimeout(ms(timeout_ms));
    s = new Store{store};
  });
  return s;
}

void unas_dist_store_free(void* s) {
  try {
    delete static_cast<Store*>(s);
  } catch (...) {
  }
}

// A Gloo process group of `world` ranks meeting through `store`; its transport binds to the
// interface that `hostname` resolves to (127.0.0.1 for local ranks; "" for Gloo's default, the
// interface of this host's name). Waits at most `timeout_ms`
// for the others; the same timeout is the group's default for its collectives.
void* unas_dist_gloo(void* store, const char* hostname, int rank, int world, int64_t timeout_ms,
                     char* err, size_t n) {
  Group* g = nullptr;
  guarded(err, n, [&] {
    auto opts = c10d::ProcessGroupGloo::Options::create(ms(timeout_ms));
    std::string host(hostname);
    opts->devices.push_back(host.empty()
                                ? c10d::ProcessGroupGloo::createDefaultDevice()
                                : c10d::ProcessGroupGloo::createDeviceForHostname(host));
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(static_cast<Store*>(store)->store, rank,
                                                          world, opts);
    g = new Group{pg, nullptr, rank, world};
  });
  return g;
}

// Frees a group; its NCCL backend, if any, is shut down (its communicators finished and freed), or
// aborted where one of its collectives failed (a shutdown would wait for a peer that is gone).
void unas_dist_group_free(void* g) {
  auto* group = static_cast<Group*>(g);
  try {
    if (group->nccl) {
      if (group->nccl_failed) {
        group->nccl->abort();
      } else {
        group->nccl->shutdown();
      }
    }
  } catch (...) {
  }
  try {
    delete group;
  } catch (...) {
  }
}

// Sums `count` tensors over the ranks, in place. Consecutive tensors of one dtype and device are
// flattened into buckets of at most `bucket_bytes` (a larger tensor is its own bucket).
int unas_dist_all_reduce(void* g, at::Tensor** tensors, size_t count, int64_t bucket_bytes,
                         int64_t timeout_ms, char* err, size_t n) {
  return guarded(err, n, [&] {
    at::NoGradGuard no_grad;
    auto& group = *static_cast<Group*>(g);
    std::vector<at::Tensor> bucket;
    int64_t bytes = 0;
    for (size_t i = 0; i < count; ++i) {
      const at::Tensor& t = *tensors[i];
      TORCH_CHECK(t.defined(), "all-reduce: tensor ", i, " is undefined");
      int64_t t_bytes = t.numel() * static_cast<int64_t>(t.element_size());
      bool fits = !bucket.empty() && bucket[0].scalar_type() == t.scalar_type() &&
                  bucket[0].device() == t.device() && bytes + t_bytes <= bucket_bytes;
      if (!bucket.empty() && !fits) {
        all_reduce_bucket(group, bucket, ms(timeout_ms));
        bucket.clear();
        bytes = 0;
      }
      bucket.push_back(t);
      bytes += t_bytes;
    }
    if (!bucket.empty()) all_reduce_bucket(group, bucket, ms(timeout_ms));
  });
}

// Copies rank `root`'s tensors into every rank's, in place.
int unas_dist_broadcast(void* g, at::Tensor** tensors, size_t count, int root, int64_t timeout_ms,
                        char* err, size_t n) {
  return guarded(err, n, [&] {
    at::NoGradGuard no_grad;
    auto& group = *static_cast<Group*>(g);
    TORCH_CHECK(root >= 0 && root < group.world, "broadcast: root rank ", root,
                " is not a rank of this group of ", group.world);
    for (size_t i = 0; i < count; ++i) {
      c10d::BroadcastOptions opts;
      opts.rootRank = root;
      opts.timeout = ms(timeout_ms);
      std::vector<at::Tensor> one{tensors[i]->contiguous()};
      auto& backend = backend_for(group, one[0].device());
      collective(group, backend, ms(timeout_ms),
                 [&](c10d::Backend& b) { return b.broadcast(one, opts); });
      if (!one[0].is_same(*tensors[i])) tensors[i]->copy_(one[0]);
    }
  });
}

// Gathers every rank's `input` into `output` ([world, ...input's shape], same dtype and device),
// in rank order.
int unas_dist_all_gather(void* g, at::Tensor* input, at::Tensor* output, int64_t timeout_ms,
                         char* err, size_t n) {
  return guarded(err, n, [&] {
    at::NoGradGuard no_grad;
    auto& group = *static_cast<Group*>(g);
    TORCH_CHECK(output->dim() == input->dim() + 1 && output->size(0) == group.world,
                "all-gather: the output must be [", group.world, ", ...input's shape]");
    std::vector<at::Tensor> inputs{input->contiguous()};
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int r = 0; r < group.world; ++r) outputs[0].push_back(at::empty_like(inputs[0]));
    c10d::AllgatherOptions opts;
    opts.timeout = ms(timeout_ms);
    auto& backend = backend_for(group, inputs[0].device());
    collective(group, backend, ms(timeout_ms),
               [&](c10d::Backend& b) { return b.allgather(outputs, inputs, opts); });
    for (int r = 0; r < group.world; ++r) (*output)[r].copy_(outputs[0][r]);
  });
}

// Returns once every rank has called it, or fails after `timeout_ms` (on Gloo, which needs no
// device: NCCL's barrier would guess one).
int unas_dist_barrier(void* g, int64_t timeout_ms, char* err, size_t n) {
  return guarded(err, n, [&] {
    auto& group = *static_cast<Group*>(g);
    c10d::BarrierOptions opts;
    opts.timeout = ms(timeout_ms);
    collective(group, *group.gloo, ms(timeout_ms),
               [&](c10d::Backend& b) { return b.barrier(opts); });
  });
}

}  // extern "C"

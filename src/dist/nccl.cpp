// libtorch's NCCL process group (in libtorch_cuda.so, which tch does not bind) added to a group of
// `shim.cpp`, so that the group's CUDA tensors go through NCCL. Built by build.rs into a library of its
// own, embedded and `dlopen`ed only by a rank whose run is on a GPU: its symbols resolve against the
// libtorch_cuda.so (and the libnccl.so.2 it needs) that `device::load_cuda_backend` loaded.
//
// Compiled against the headers `make setup` keeps (nccl.h of the NCCL that torch pins, and the CUDA
// headers ATen/cuda includes): the class layout below must be the one libtorch_cuda.so was built with,
// and the static_asserts check it against the sizes read from that library (`objdump -d` of
// ~ProcessGroupNCCL's deleting destructor, `operator delete(p, 0x458)`, and of a call of
// `Options::Options(bool)`, `operator new(0xf8)`). A new torch pin must read them again.
//
// Every function catches C++ exceptions and writes the message into `err`, returning non-zero.

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#include <torch/headeronly/version.h>

#include <ATen/cuda/CUDAContext.h>

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "../embedded_shim.h"
#include "handles.h"

#if TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR == 11
static_assert(sizeof(c10d::ProcessGroupNCCL) == 0x458,
              "ProcessGroupNCCL's layout differs from libtorch_cuda.so 2.11's: are these the "
              "headers of nvidia-nccl-cu13==2.28.9 (make setup)?");
static_assert(sizeof(c10d::ProcessGroupNCCL::Options) == 0xf8,
              "ProcessGroupNCCL::Options' layout differs from libtorch_cuda.so 2.11's");
#else
#error "src/dist/nccl.cpp checks the layout of libtorch 2.11's ProcessGroupNCCL: read the sizes of this libtorch (see the comment above) and update them"
#endif

using unas_shim::guarded;

extern "C" {

// The ABI version Rust checks before using anything else.
int unas_dist_nccl_abi() { return 1; }

// The UUID (16 bytes) of CUDA device `device` as this process sees it: two ranks on one GPU (which
// NCCL refuses) see the same one, whatever CUDA_VISIBLE_DEVICES made of its index.
int unas_dist_gpu_uuid(int device, unsigned char* out, char* err, size_t n) {
  return guarded(err, n, [&] {
    const cudaDeviceProp* p = at::cuda::getDeviceProperties(device);
    static_assert(sizeof(p->uuid.bytes) == 16, "cudaUUID_t is 16 bytes");
    std::memcpy(out, p->uuid.bytes, 16);
  });
}

// Adds an NCCL backend to `group` (every rank calls it at the same point): its communicator on CUDA
// device `device`, set up now (not at the first collective, so that a failure shows here). Its keys
// live under `nccl/` in the group's store. With blocking wait (TORCH_NCCL_BLOCKING_WAIT=1, which the
// rank's launcher or `--slurm-ranks` puts in its environment before any thread starts; set here only
// as a fallback) a collective's wait blocks the CPU and throws after `timeout_ms`; without it NCCL's
// watchdog would end the process instead.
int unas_dist_add_nccl(void* group, void* store, int device, int64_t timeout_ms, char* err,
                       size_t n) {
  return guarded(err, n, [&] {
    auto& g = *static_cast<unas_dist::Group*>(group);
    TORCH_CHECK(!g.nccl, "this group already has an NCCL backend");
    ::setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>(
        "nccl", static_cast<unas_dist::Store*>(store)->store);
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = std::chrono::milliseconds(timeout_ms);
    auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, g.rank, g.world, opts);
    pg->eagerConnectSingleDevice(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device)));
    g.nccl = pg;
  });
}

}  // extern "C"

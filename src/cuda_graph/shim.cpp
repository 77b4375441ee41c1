// The CUDA-graph calls tch does not bind (`at::cuda::CUDAGraph`, the side stream a capture needs),
// as a C ABI for `src/cuda_graph/mod.rs`. Built by build.rs into a shared library that the binary
// embeds and `dlopen`s only when a run asks for CUDA graphs on a CUDA device: its undefined symbols
// resolve against the libtorch_cuda.so that `device::load_cuda_backend` loaded with RTLD_GLOBAL, so
// the binary itself never depends on CUDA libraries.
//
// Every function catches C++ exceptions (they must not cross into Rust) and writes the message
// into `err` (at most `n` bytes, NUL-terminated), returning non-zero / null on failure.

#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

#include <string>

#include "../embedded_shim.h"

namespace {

using unas_shim::guarded;

// A side stream and the stream that was current before it was entered.
struct Side {
  c10::cuda::CUDAStream stream;
  c10::cuda::CUDAStream previous;
  bool entered;
};

}  // namespace

extern "C" {

// The ABI version Rust checks before using anything else.
int unas_cg_abi() { return 1; }

// A side stream of `device` from libtorch's pool, kept for the life of the handle.
void* unas_cg_side_new(int device, char* err, size_t n) {
  Side* s = nullptr;
  guarded(err, n, [&] {
    auto dev = static_cast<c10::DeviceIndex>(device);
    auto side = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, dev);
    s = new Side{side, c10::cuda::getCurrentCUDAStream(dev), false};
  });
  return s;
}

// Waits for the whole device, then makes the side stream the calling thread's current stream.
int unas_cg_side_enter(void* h, char* err, size_t n) {
  return guarded(err, n, [&] {
    auto* s = static_cast<Side*>(h);
    TORCH_CHECK(!s->entered, "the side stream is already entered");
    c10::cuda::device_synchronize();
    s->previous = c10::cuda::getCurrentCUDAStream(s->stream.device_index());
    c10::cuda::setCurrentCUDAStream(s->stream);
    s->entered = true;
  });
}

// Waits for the whole device, then restores the stream that was current before `enter`.
int unas_cg_side_exit(void* h, char* err, size_t n) {
  return guarded(err, n, [&] {
    auto* s = static_cast<Side*>(h);
    TORCH_CHECK(s->entered, "the side stream is not entered");
    c10::cuda::device_synchronize();
    c10::cuda::setCurrentCUDAStream(s->previous);
    s->entered = false;
  });
}

void unas_cg_side_free(void* h) { delete static_cast<Side*>(h); }

void* unas_cg_graph_new(char* err, size_t n) {
  at::cuda::CUDAGraph* g = nullptr;
  guarded(err, n, [&] { g = new at::cuda::CUDAGraph(); });
  return g;
}

// Starts capturing the calling thread's current (side) stream into the graph's own memory pool.
// Global mode (as torch.cuda.graph): the caller keeps the data loader's worker idle meanwhile.
// capture_begin registers the default CUDA generator, whose seed and offset each replay reads.
int unas_cg_capture_begin(void* g, char* err, size_t n) {
  return guarded(err, n, [&] {
    static_cast<at::cuda::CUDAGraph*>(g)->capture_begin(
        {0, 0}, cudaStreamCaptureModeGlobal);
  });
}

// Ends the capture and instantiates the executable graph.
int unas_cg_capture_end(void* g, char* err, size_t n) {
  return guarded(err, n, [&] { static_cast<at::cuda::CUDAGraph*>(g)->capture_end(); });
}

// Launches the graph on the calling thread's current stream (the default stream of the loop);
// the default CUDA generator's philox seed and offset are read at launch, so a manual_seed before
// the replay seeds its random kernels as it would seed the eager step.
int unas_cg_replay(void* g, char* err, size_t n) {
  return guarded(err, n, [&] { static_cast<at::cuda::CUDAGraph*>(g)->replay(); });
}

void unas_cg_graph_free(void* g) {
  try {
    delete static_cast<at::cuda::CUDAGraph*>(g);
  } catch (...) {
  }
}

}  // extern "C"

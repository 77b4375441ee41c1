#!/usr/bin/env python3
"""Links the CUDA-graph shim (src/cuda_graph/shim.cpp, built by build.rs) against a real libtorch_cuda
and calls its C ABI, without unas: every symbol must resolve (RTLD_NOW), the ABI version must match,
and on a machine without a GPU the calls that need one must come back as an error message (the C++
exception caught inside the shim), not a crash.

    .deps/bench-venv/bin/python scripts/cuda-graph-shim-check.py target/release/build/unas-*/out/libunas_cuda_graph.so

Run it with a Python whose torch is the full 2.11 wheel (make bench-venv). Exit 0 when every check holds.
"""
import ctypes
import os
import sys

import torch

ABI = 1  # src/cuda_graph/mod.rs


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    lib = os.path.join(os.path.dirname(torch.__file__), "lib")
    # libtorch_cuda and its peers into the global scope, as unas's device::load_cuda_backend does
    for name in ("libc10.so", "libc10_cuda.so", "libtorch_cpu.so", "libtorch_cuda.so"):
        ctypes.CDLL(os.path.join(lib, name), mode=os.RTLD_NOW | os.RTLD_GLOBAL)
    shim = ctypes.CDLL(sys.argv[1], mode=os.RTLD_NOW)  # fails here if a symbol does not resolve
    print(f"torch {torch.__version__}: every symbol of {os.path.basename(sys.argv[1])} resolved")
    abi = shim.unas_cg_abi()
    assert abi == ABI, f"ABI {abi}, expected {ABI}"
    for fn in ("unas_cg_side_new", "unas_cg_graph_new"):
        getattr(shim, fn).restype = ctypes.c_void_p
    side_err, graph_err = ctypes.create_string_buffer(1024), ctypes.create_string_buffer(1024)
    side = shim.unas_cg_side_new(0, side_err, len(side_err))
    graph = shim.unas_cg_graph_new(graph_err, len(graph_err))
    first = lambda b: b.value.decode(errors="replace").splitlines()[0][:160] if b.value else ""
    if torch.cuda.is_available():
        assert side and graph, f"on a GPU both handles must come back: {first(side_err)!r} {first(graph_err)!r}"
        print(f"GPU {torch.cuda.get_device_name(0)}: a side stream and a graph created")
    else:
        assert side is None, "a side stream without a GPU"
        assert side_err.value, "no error message without a GPU"
        print(f"no GPU: unas_cg_side_new returned null with: {first(side_err)}")
        print(f"no GPU: unas_cg_graph_new returned {'null with: ' + first(graph_err) if graph is None else 'a graph'}")
    if graph:
        shim.unas_cg_graph_free(ctypes.c_void_p(graph))
    if side:
        shim.unas_cg_side_free(ctypes.c_void_p(side))
    print("ok")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""PyTorch alone corrupts the C heap in oneDNN's 1x1 stride-2 convolution backward-weights when the
input is channels-last (NHWC) with fewer input channels than the kernel's channel block (issue 25,
item 10; the finding is written up in `src/data/memory_format.rs`).

    .deps/bench-venv/bin/python bench/onednn_repro.py

Each case runs in a child process (oneDNN reads ONEDNN_MAX_CPU_ISA once, and a corrupted heap ends
the process): one thread, `Conv2d(IC, 6, kernel 1, stride 2, no bias)` on a [2, IC, 56, 56] input that
requires a gradient, three forward + backward passes. This is the stride-2 1x1 convolution of DARTS's
FactorizedReduce on the first ImageNet cell (`mb2_ic12oc6_ih56oh28kh1sh2`, the last primitive before
the crash in `tests/imagenet_folder.rs`). Seen with torch 2.11.0 (oneDNN v3.10.2) on an AMD EPYC with
AVX-512: channels-last crashes (SIGSEGV or SIGABRT, glibc's "double free or corruption") for IC < 16
under every AVX-512 level (`jit_1x1:avx512_core`) and for IC < 8 under ONEDNN_MAX_CPU_ISA=AVX2 (`jit_1x1:avx2`);
contiguous NCHW never does. This matches uxlfoundation/oneDNN#6035 ("1x1 convolution backward_weights
writes past the rtus workspace (nhwc, IC < ic_block)"): the strided source is first copied to a
unit-stride workspace sized for IC channels a pixel but indexed by the channel block. valgrind (which
hides AVX-512, so oneDNN takes its AVX2 kernel) shows the write, then dies itself (a few minutes):

    ONEDNN_MAX_CPU_ISA=AVX2 valgrind --undef-value-errors=no .deps/bench-venv/bin/python \
        bench/onednn_repro.py --case channels_last 4

"Invalid write of size 8" from the JIT code run by `jit_avx2_1x1_convolution_bwd_weights_t::
execute_backward_weights`, "0 bytes after a block of size 12,672" allocated by ideep inside
`mkldnn_convolution_backward_weights`.

Exit status 1 if a contiguous (NCHW) case crashed: the layout `unas` relies on would be unsafe too.
"""
import os
import shutil
import signal
import subprocess
import sys
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

IN_CHANNELS = (4, 12, 16)
LAYOUTS = ("channels_last", "contiguous")
ISAS = ("ALL", "AVX2")


def case(layout, ic):
    """The child: the convolution's forward and backward, three times."""
    import torch

    torch.set_num_threads(1)
    x = torch.randn(2, ic, 56, 56)
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    x.requires_grad_()
    conv = torch.nn.Conv2d(ic, 6, kernel_size=1, stride=2, bias=False)
    for _ in range(3):
        conv(x).sum().backward()


def run(isa, layout, ic):
    """(outcome, the oneDNN kernel that computed the weight gradient) of one case in a child."""
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA=isa, ONEDNN_VERBOSE="1")
    # oneDNN's verbose lines go through C stdio: line-buffered, so a crash does not lose them.
    line_buffered = ["stdbuf", "-oL"] if shutil.which("stdbuf") else []
    r = subprocess.run([*line_buffered, sys.executable, __file__, "--case", layout, str(ic)],
                       env=env, capture_output=True, text=True, timeout=120)
    kernels = [line.split(",")[6] for line in r.stdout.splitlines()
               if line.startswith("onednn_verbose") and ",backward_weights," in line]
    if r.returncode == 0:
        outcome = "ok"
    elif r.returncode < 0:
        outcome = f"crashed ({signal.Signals(-r.returncode).name})"
    else:
        outcome = f"failed (exit {r.returncode}): {r.stderr.strip().splitlines()[-1:]}"
    return outcome, kernels[0] if kernels else "(died before its log line)"


def main():
    if sys.argv[1:2] == ["--case"]:
        case(sys.argv[2], int(sys.argv[3]))
        return 0
    import torch

    avx512 = " avx512f" in open("/proc/cpuinfo").read()
    print(f"torch {torch.__version__}, CPU with AVX-512: {avx512}")
    print(f"{'ISA cap':8} {'layout':14} {'IC':>3}  {'oneDNN weight-gradient kernel':32} outcome")
    unsafe_nchw = False
    for isa in ISAS:
        for layout in LAYOUTS:
            for ic in IN_CHANNELS:
                outcome, kernel = run(isa, layout, ic)
                print(f"{isa:8} {layout:14} {ic:3}  {kernel:32} {outcome}", flush=True)
                unsafe_nchw |= layout == "contiguous" and outcome != "ok"
    return 1 if unsafe_nchw else 0


if __name__ == "__main__":
    sys.exit(main())

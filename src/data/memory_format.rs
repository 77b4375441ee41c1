//! The memory format of an image batch: contiguous NCHW, the layout torchvision's `ToTensor` gives the
//! official code. Decoded pixels are NHWC; a batch left as the permuted view of them is channels-last
//! to libtorch, which then runs every convolution of the network on NHWC data, and that layout meets a
//! oneDNN bug.
//!
//! **The oneDNN bug (issue 25, item 10).** libtorch 2.11's oneDNN (v3.10.2) 1x1 stride-2 convolution
//! backward-weights (`jit_1x1`) corrupts the C heap when its source is NHWC with fewer input channels
//! than the kernel's channel block: 16 under AVX-512, 8 under AVX2. glibc then aborts ("double free
//! or corruption" when `mkldnn_convolution_backward_weights` frees its buffers) or the process dies
//! with SIGSEGV. PyTorch alone does it: `bench/onednn_repro.py` (one `Conv2d(IC, 6, 1, stride 2)` on a
//! `[2, IC, 56, 56]` channels-last input, one thread) crashes for IC 4 and 12 with no cap, for IC 4
//! with `ONEDNN_MAX_CPU_ISA=AVX2`, and never on contiguous NCHW. Under valgrind (which hides AVX-512,
//! so oneDNN takes its AVX2 kernel) IC 4 shows the write: "Invalid write of size 8" from the JIT code
//! that `jit_avx2_1x1_convolution_bwd_weights_t::execute_backward_weights` runs, 0 bytes after a
//! 12,672-byte block ideep allocated inside `mkldnn_convolution_backward_weights` (then valgrind itself
//! dies). It is uxlfoundation/oneDNN#6035: the strided source is first copied into a unit-stride
//! workspace sized for IC channels a pixel but indexed by the channel block.
//! In `unas` it was the ImageNet loader's NHWC batches reaching DARTS's FactorizedReduce on the first
//! cell (`mb2_ic12oc6_ih56oh28kh1sh2`, the last line of `ONEDNN_VERBOSE=1` before the crash): with the
//! AVX2 cap lifted (`ONEDNN_MAX_CPU_ISA=ALL`), `cargo test --test imagenet_folder` before this change
//! died in 14 runs of 14 (the test and its experiment run directly, 1 or 2 threads) on an AMD EPYC
//! with AVX-512, and passes in 12 of 12 after it, where every 1x1 stride-2 backward-weights in the
//! verbose log reads a blocked (`aBcd16b` or `aBcd8b`) source. The cap (5c172d8) only hid it for
//! 8 ≤ IC < 16, so it is gone: the batch is made contiguous NCHW here instead, which never took the
//! faulty path (0 crashes in 576 NCHW shapes under `ALL` and `AVX2`: kernels 1 and 3, strides 1 and
//! 2, IC 3 to 20). Our own code is clean under valgrind too (AVX2 kernels there): that test's search
//! job (`unas --threads 1 run FILE --job ID` under `valgrind --undef-value-errors=no`, 16 steps in
//! 20 minutes) gave 0 errors.

use tch::Tensor;

/// Decoded pixels `[N, H, W, C]` → `[N, C, H, W]`, contiguous (a copy, not a permuted view).
pub fn nchw(nhwc: &Tensor) -> Tensor {
    nhwc.permute([0, 3, 1, 2]).contiguous()
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, Tensor};

    #[test]
    fn decoded_pixels_become_contiguous_nchw() {
        let nhwc = Tensor::arange(2 * 4 * 5 * 3, (Kind::Uint8, Device::Cpu)).view([2, 4, 5, 3]);
        assert!(!nhwc.permute([0, 3, 1, 2]).is_contiguous());
        let x = super::nchw(&nhwc);
        assert_eq!(x.size(), [2, 3, 4, 5]);
        assert!(x.is_contiguous());
        // pixel (n=1, h=2, w=3), channel 1 keeps its value
        assert_eq!(
            x.int64_value(&[1, 1, 2, 3]),
            nhwc.int64_value(&[1, 2, 3, 1])
        );
    }
}

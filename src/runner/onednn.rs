//! oneDNN's instruction-set cap. On an AVX-512 CPU (an AMD EPYC with AVX-512, 2026-12-02) libtorch
//! 2.11's oneDNN convolution backward-weights kernel corrupted the C heap on a small ImageNet-shaped
//! DARTS supernet (`tests/imagenet_folder.rs`: "double free or corruption" inside
//! `mkldnn_convolution_backward_weights`, then SIGSEGV or SIGABRT; every AVX-512 level from
//! AVX512_CORE up failed, AVX2 passed). So where the user has not chosen a cap, it is set to AVX2 on
//! CPUs with AVX-512 before libtorch runs anything; the training step measured within noise of the
//! uncapped one (600/644 ms vs 661/614 ms, alternating). Setting `ONEDNN_MAX_CPU_ISA` yourself (e.g.
//! `ALL`) overrides this. Child processes (workers) inherit it.

/// The variable oneDNN reads once, at its first use.
pub const VAR: &str = "ONEDNN_MAX_CPU_ISA";

/// Caps oneDNN at AVX2 on an AVX-512 CPU unless the user set a cap. Returns the cap it set.
pub fn cap_isa() -> Option<&'static str> {
    let user_set =
        std::env::var_os(VAR).is_some() || std::env::var_os("DNNL_MAX_CPU_ISA").is_some();
    if user_set || !has_avx512() {
        return None;
    }
    std::env::set_var(VAR, "AVX2");
    Some("AVX2")
}

#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx512() -> bool {
    false
}

//! The C heap's thresholds for tensor-sized blocks. libtorch allocates every CPU tensor with
//! `posix_memalign`; with glibc's defaults a block above the (dynamic, at first 128 KiB) mmap threshold
//! is mapped, unmapped when freed and faulted in page by page on its next use, and a freed top of the
//! heap above 128 KiB is trimmed back to the kernel. A training step frees and reallocates the same
//! activations every step, so with the defaults a measurable share of it was page faults
//! (`perf`: 220 samples of page-fault handling in ours against 139 in the PyTorch reference over the
//! same 11 steps). Fixing both thresholds keeps the activations' blocks in the heap between steps.
//! Skipped when the user sets glibc's malloc tunables (`GLIBC_TUNABLES=glibc.malloc.…`) themselves.

/// Blocks up to this size come from the heap, not from a fresh mapping: glibc's largest allowed value
/// on 64-bit (4 MiB · sizeof(long)), also the ceiling of its own dynamic adjustment.
pub const MMAP_THRESHOLD: usize = 32 << 20;
/// Free memory at the top of the heap up to this size is kept for the next step.
pub const TRIM_THRESHOLD: usize = 512 << 20;

/// Sets both thresholds (once, at start, before any tensor exists). Returns whether it did.
pub fn keep_tensor_blocks() -> bool {
    let user_set = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc."));
    if user_set {
        return false;
    }
    set_thresholds()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_thresholds() -> bool {
    // SAFETY: mallopt only changes the allocator's parameters; it is called before other threads
    // allocate (at the start of main).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_thresholds() -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_accepts_both_thresholds() {
        // mallopt returns 0 for a value it refuses (an mmap threshold above 32 MiB on 64-bit).
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(super::set_thresholds());
        }
    }
}

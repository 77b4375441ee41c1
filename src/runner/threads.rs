//! A process's share of the cores: libtorch otherwise starts one thread per core in every process, and
//! three processes on two cores ran one smoke search 7–14× slower than one alone. `--threads N` sets
//! libtorch's intra-op pool (and one inter-op thread) and `OMP_NUM_THREADS` / `MKL_NUM_THREADS` for
//! anything this process starts; the workers of `--workers` / `--gpus` each get their share.

/// Cores of this machine (or of the cgroup / affinity mask it runs in).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Limits this process (and its children) to `n` compute threads.
pub fn apply(n: usize) {
    let n = n.max(1);
    // Before any parallel torch work: the inter-op pool can only be sized once.
    tch::set_num_interop_threads(1);
    tch::set_num_threads(n as i32);
    std::env::set_var("OMP_NUM_THREADS", n.to_string());
    std::env::set_var("MKL_NUM_THREADS", n.to_string());
    tracing::info!(threads = n, "compute threads");
}

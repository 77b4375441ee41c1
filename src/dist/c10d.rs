//! The bindings to `shim.cpp`: libtorch's c10d stores and its Gloo process group, with the four
//! collectives the training loops need (all-reduce in buckets, broadcast, all-gather, barrier),
//! each waiting at most the group's timeout; and to `nccl.cpp`, which adds libtorch_cuda's NCCL
//! process group to a group for its CUDA tensors. A failure anywhere in C++ (a peer that left, a
//! timeout, a bad argument) comes back as an error carrying c10d's message.

use std::ffi::{c_char, c_int, c_void, CString};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use tch::Tensor;

use crate::embedded_shim::{self, call, create, symbol};

/// The ABI version of `shim.cpp` this file speaks.
const ABI: c_int = 2;
/// The ABI version of `nccl.cpp` this file speaks.
const NCCL_ABI: c_int = 1;

/// Gradient buckets of at most this many bytes are all-reduced as one flat buffer (DDP's default).
pub const BUCKET_BYTES: i64 = 25 << 20;

/// The shim's bytes, when this build has one.
fn embedded_shim() -> Result<&'static [u8], &'static str> {
    #[cfg(unas_dist_shim)]
    {
        Ok(include_bytes!(env!("UNAS_DIST_SHIM")))
    }
    #[cfg(not(unas_dist_shim))]
    {
        Err(env!("UNAS_DIST_SHIM_MISSING"))
    }
}

/// The NCCL shim's bytes, when this build has one.
fn embedded_nccl_shim() -> Result<&'static [u8], &'static str> {
    #[cfg(unas_nccl_shim)]
    {
        Ok(include_bytes!(env!("UNAS_NCCL_SHIM")))
    }
    #[cfg(not(unas_nccl_shim))]
    {
        Err(env!("UNAS_NCCL_SHIM_MISSING"))
    }
}

type AbiFn = unsafe extern "C" fn() -> c_int;
type TcpStoreFn = unsafe extern "C" fn(
    *const c_char,
    c_int,
    c_int,
    c_int,
    i64,
    *mut c_char,
    usize,
) -> *mut c_void;
type FileStoreFn =
    unsafe extern "C" fn(*const c_char, c_int, i64, *mut c_char, usize) -> *mut c_void;
type GlooFn = unsafe extern "C" fn(
    *mut c_void,
    *const c_char,
    c_int,
    c_int,
    i64,
    *mut c_char,
    usize,
) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void);
type AllReduceFn = unsafe extern "C" fn(
    *mut c_void,
    *const *mut c_void,
    usize,
    i64,
    i64,
    *mut c_char,
    usize,
) -> c_int;
type BroadcastFn = unsafe extern "C" fn(
    *mut c_void,
    *const *mut c_void,
    usize,
    c_int,
    i64,
    *mut c_char,
    usize,
) -> c_int;
type AllGatherFn =
    unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_void, i64, *mut c_char, usize) -> c_int;
type BarrierFn = unsafe extern "C" fn(*mut c_void, i64, *mut c_char, usize) -> c_int;
type GpuUuidFn = unsafe extern "C" fn(c_int, *mut u8, *mut c_char, usize) -> c_int;
type AddNcclFn =
    unsafe extern "C" fn(*mut c_void, *mut c_void, c_int, i64, *mut c_char, usize) -> c_int;

/// Opens the embedded shim `name` (`bytes`) and checks that its `abi_fn` answers `abi`.
fn open_shim(name: &str, bytes: &[u8], abi_fn: &str, abi: c_int) -> Result<*mut c_void> {
    let h = embedded_shim::open(name, bytes, libc::RTLD_NOW | libc::RTLD_LOCAL)?;
    // SAFETY: the ABI function of both shims is `int f(void)`.
    let f = unsafe { std::mem::transmute::<*mut c_void, AbiFn>(symbol(h, name, abi_fn)?) };
    // SAFETY: a plain function of no arguments.
    let got = unsafe { f() };
    if got != abi {
        bail!("the {name} shim speaks ABI {got}, this binary {abi}");
    }
    Ok(h)
}

/// The function `$sym` of the shim `$name` opened as `$h`, as the `extern "C"` type `$ty`.
macro_rules! shim_fn {
    ($h:expr, $name:literal, $sym:literal, $ty:ty) => {
        // SAFETY: the symbol is the extern "C" function of the shim with this signature.
        unsafe { std::mem::transmute::<*mut c_void, $ty>(symbol($h, $name, $sym)?) }
    };
}

struct Shim {
    tcp_store: TcpStoreFn,
    file_store: FileStoreFn,
    store_free: FreeFn,
    gloo: GlooFn,
    group_free: FreeFn,
    all_reduce: AllReduceFn,
    broadcast: BroadcastFn,
    all_gather: AllGatherFn,
    barrier: BarrierFn,
}

impl Shim {
    /// Opens the embedded shim; its c10d symbols resolve against the libtorch_cpu this process
    /// already loaded.
    fn load() -> Result<Shim> {
        let bytes = embedded_shim().map_err(|why| {
            anyhow!(
                "this unas binary cannot run more than one rank: {why}; rebuild after `make setup`"
            )
        })?;
        let h = open_shim("c10d", bytes, "unas_dist_abi", ABI)?;
        macro_rules! f {
            ($sym:literal, $ty:ty) => {
                shim_fn!(h, "c10d", $sym, $ty)
            };
        }
        Ok(Shim {
            tcp_store: f!("unas_dist_tcp_store", TcpStoreFn),
            file_store: f!("unas_dist_file_store", FileStoreFn),
            store_free: f!("unas_dist_store_free", FreeFn),
            gloo: f!("unas_dist_gloo", GlooFn),
            group_free: f!("unas_dist_group_free", FreeFn),
            all_reduce: f!("unas_dist_all_reduce", AllReduceFn),
            broadcast: f!("unas_dist_broadcast", BroadcastFn),
            all_gather: f!("unas_dist_all_gather", AllGatherFn),
            barrier: f!("unas_dist_barrier", BarrierFn),
        })
    }
}

/// The NCCL shim: what a rank on a GPU needs to put its group's CUDA tensors on NCCL.
pub struct Nccl {
    gpu_uuid: GpuUuidFn,
    add_nccl: AddNcclFn,
}

impl Nccl {
    /// Opens the embedded NCCL shim; its symbols resolve against the libtorch_cuda.so that
    /// `device::load_cuda_backend` loaded (and the libnccl.so.2 it needs), so this fails, saying
    /// why, on a machine without them.
    fn load() -> Result<Nccl> {
        let bytes = embedded_nccl_shim().map_err(|why| {
            anyhow!("this unas binary has no NCCL: {why}; rebuild after `make setup`")
        })?;
        if let Err(why) = crate::device::load_cuda_backend() {
            bail!("NCCL needs libtorch's CUDA backend, which could not be loaded ({why})");
        }
        let h = open_shim("nccl", bytes, "unas_dist_nccl_abi", NCCL_ABI)?;
        Ok(Nccl {
            gpu_uuid: shim_fn!(h, "nccl", "unas_dist_gpu_uuid", GpuUuidFn),
            add_nccl: shim_fn!(h, "nccl", "unas_dist_add_nccl", AddNcclFn),
        })
    }

    /// The UUID of CUDA device `index` as this process sees it (two processes on one GPU see the
    /// same, whatever their `CUDA_VISIBLE_DEVICES`).
    pub fn gpu_uuid(&self, index: usize) -> Result<[u8; 16]> {
        let mut out = [0u8; 16];
        // SAFETY: a 16-byte buffer and a valid error buffer.
        call("reading the GPU's UUID", |b, n| unsafe {
            (self.gpu_uuid)(index as c_int, out.as_mut_ptr(), b, n)
        })?;
        Ok(out)
    }
}

static NCCL: OnceLock<Result<Nccl, String>> = OnceLock::new();

/// The NCCL shim, loaded once; the reason it cannot be used otherwise.
pub fn nccl() -> Result<&'static Nccl> {
    NCCL.get_or_init(|| Nccl::load().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("{e}"))
}

static SHIM: OnceLock<Result<Shim, String>> = OnceLock::new();

fn shim() -> Result<&'static Shim> {
    SHIM.get_or_init(|| Shim::load().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("{e}"))
}

fn millis(timeout: Duration) -> i64 {
    i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX)
}

fn c_string(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| anyhow!("{what} `{s}` contains a NUL byte"))
}

/// Where the ranks of one run meet: a key-value store every rank reaches.
pub struct Store {
    shim: &'static Shim,
    handle: *mut c_void,
}

// SAFETY: c10d stores are thread-safe; the handle is owned by this value alone.
unsafe impl Send for Store {}

impl Store {
    /// A TCPStore at `host:port`; rank 0 (`server`) listens there and waits at most `timeout` for
    /// the other `world - 1` ranks, the others connect within `timeout`.
    pub fn tcp(
        host: &str,
        port: u16,
        world: usize,
        server: bool,
        timeout: Duration,
    ) -> Result<Store> {
        let shim = shim()?;
        let c_host = c_string("the store host", host)?;
        let what = format!("connecting to the rank store at {host}:{port}");
        // SAFETY: valid C strings and a valid buffer of the length passed.
        let handle = create(&what, |b, n| unsafe {
            (shim.tcp_store)(
                c_host.as_ptr(),
                c_int::from(port),
                world as c_int,
                c_int::from(server),
                millis(timeout),
                b,
                n,
            )
        })?;
        Ok(Store { shim, handle })
    }

    /// A FileStore at `path` (on a filesystem every rank sees) for `world` ranks.
    pub fn file(path: &Path, world: usize, timeout: Duration) -> Result<Store> {
        let shim = shim()?;
        let c_path = c_string("the store path", &path.to_string_lossy())?;
        let what = format!("opening the rank store {}", path.display());
        // SAFETY: a valid C string and a valid buffer of the length passed.
        let handle = create(&what, |b, n| unsafe {
            (shim.file_store)(c_path.as_ptr(), world as c_int, millis(timeout), b, n)
        })?;
        Ok(Store { shim, handle })
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: the handle came from a store constructor and is freed once.
        unsafe { (self.shim.store_free)(self.handle) }
    }
}

/// The ranks of one run: a c10d process group and the timeout of each of its collectives.
pub struct Group {
    shim: &'static Shim,
    handle: *mut c_void,
    rank: usize,
    world: usize,
    timeout: Duration,
    /// CUDA tensors go through NCCL (`add_nccl` succeeded).
    nccl: bool,
    /// The group holds its own reference to the store; this one keeps the order of drops, and is
    /// where an NCCL backend added later meets.
    store: Store,
}

// SAFETY: one thread at a time drives a group (the loops are single-threaded); Gloo's own worker
// threads live inside the backend.
unsafe impl Send for Group {}

impl Group {
    /// A Gloo group (CPU tensors; CUDA tensors go through host memory) of `world` ranks meeting in
    /// `store`, its transport on the interface `hostname` resolves to. Waits at most `timeout` for
    /// every rank to join.
    pub fn gloo(
        store: Store,
        hostname: &str,
        rank: usize,
        world: usize,
        timeout: Duration,
    ) -> Result<Group> {
        let shim = store.shim;
        let c_host = c_string("the rank host", hostname)?;
        let what = format!("joining the Gloo group as rank {rank} of {world}");
        // SAFETY: a live store, a valid C string and a valid buffer of the length passed.
        let handle = create(&what, |b, n| unsafe {
            (shim.gloo)(
                store.handle,
                c_host.as_ptr(),
                rank as c_int,
                world as c_int,
                millis(timeout),
                b,
                n,
            )
        })?;
        Ok(Group {
            shim,
            handle,
            rank,
            world,
            timeout,
            nccl: false,
            store,
        })
    }

    #[cfg(test)]
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Puts this group's CUDA tensors on NCCL (every rank calls it at the same point, each with its
    /// own GPU `index`); its communicator is set up now, meeting in this group's store.
    pub fn add_nccl(&mut self, nccl: &Nccl, index: usize) -> Result<()> {
        let what = format!(
            "setting up NCCL on cuda:{index} as rank {} of {}",
            self.rank, self.world
        );
        // SAFETY: a live group and store, and a valid error buffer.
        call(&what, |b, n| unsafe {
            (nccl.add_nccl)(
                self.handle,
                self.store.handle,
                index as c_int,
                millis(self.timeout),
                b,
                n,
            )
        })?;
        self.nccl = true;
        Ok(())
    }

    /// Whether CUDA tensors go through NCCL.
    pub fn has_nccl(&self) -> bool {
        self.nccl
    }

    /// `t ← Σ_ranks t` for every tensor, in place, flattened into buckets of `BUCKET_BYTES`.
    pub fn all_reduce_sum(&self, tensors: &[&Tensor]) -> Result<()> {
        let ptrs: Vec<*mut c_void> = tensors.iter().map(|t| t.as_ptr() as *mut c_void).collect();
        let s = self.shim;
        // SAFETY: live tensors (borrowed for the call), a live group and a valid buffer.
        call("all-reduce across ranks", |b, n| unsafe {
            (s.all_reduce)(
                self.handle,
                ptrs.as_ptr(),
                ptrs.len(),
                BUCKET_BYTES,
                millis(self.timeout),
                b,
                n,
            )
        })
    }

    /// Copies rank `root`'s tensors into every rank's, in place.
    pub fn broadcast(&self, tensors: &[&Tensor], root: usize) -> Result<()> {
        let ptrs: Vec<*mut c_void> = tensors.iter().map(|t| t.as_ptr() as *mut c_void).collect();
        let s = self.shim;
        // SAFETY: live tensors, a live group and a valid buffer.
        call("broadcast across ranks", |b, n| unsafe {
            (s.broadcast)(
                self.handle,
                ptrs.as_ptr(),
                ptrs.len(),
                root as c_int,
                millis(self.timeout),
                b,
                n,
            )
        })
    }

    /// Every rank's `input`, stacked in rank order: `[world, ...input's shape]`.
    pub fn all_gather(&self, input: &Tensor) -> Result<Tensor> {
        let mut shape = vec![self.world as i64];
        shape.extend(input.size());
        let output = Tensor::empty(shape.as_slice(), (input.kind(), input.device()));
        let s = self.shim;
        // SAFETY: live tensors, a live group and a valid buffer.
        call("all-gather across ranks", |b, n| unsafe {
            (s.all_gather)(
                self.handle,
                input.as_ptr() as *mut c_void,
                output.as_ptr() as *mut c_void,
                millis(self.timeout),
                b,
                n,
            )
        })?;
        Ok(output)
    }

    /// Returns once every rank has reached it.
    pub fn barrier(&self) -> Result<()> {
        let s = self.shim;
        // SAFETY: a live group and a valid buffer.
        call("barrier across ranks", |b, n| unsafe {
            (s.barrier)(self.handle, millis(self.timeout), b, n)
        })
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: the handle came from a group constructor and is freed once.
        unsafe { (self.shim.group_free)(self.handle) }
    }
}

#[cfg(all(test, unas_nccl_shim))]
mod tests {
    use std::collections::HashSet;
    use std::process::Command;

    /// `nm -D` of `args` on `files`: each line's last field (the symbol).
    fn nm(args: &[&str], files: &[std::path::PathBuf]) -> Vec<String> {
        let out = Command::new("nm")
            .args(["-D"])
            .args(args)
            .args(files)
            .output()
            .expect("running nm (binutils, which the C++ compiler of the shims brings)");
        assert!(out.status.success(), "nm failed: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().last().map(str::to_owned))
            .collect()
    }

    /// The NCCL shim cannot run on this machine (no GPU, no libnccl), so what makes it load on a GPU
    /// machine with the same wheel is checked here: every libtorch symbol it imports (C++ names
    /// without a version; the versioned ones are libstdc++'s and libc's) is one that libtorch_cuda,
    /// libtorch_cpu, libc10 or libc10_cuda exports.
    #[test]
    fn the_nccl_shim_imports_only_what_libtorch_exports() {
        let dir = crate::device::libtorch_dir().expect("this test binary loaded libtorch_cpu.so");
        let shim = std::env::temp_dir().join(format!("unas-nccl-nm-{}.so", std::process::id()));
        std::fs::write(
            &shim,
            super::embedded_nccl_shim().expect("cfg(unas_nccl_shim)"),
        )
        .unwrap();
        let imported: Vec<String> = nm(&["--undefined-only"], std::slice::from_ref(&shim))
            .into_iter()
            .filter(|s| s.starts_with("_Z") && !s.contains('@'))
            .collect();
        let _ = std::fs::remove_file(&shim);
        let libs: Vec<_> = [
            "libtorch_cuda.so",
            "libtorch_cpu.so",
            "libc10.so",
            "libc10_cuda.so",
        ]
        .iter()
        .map(|l| dir.join(l))
        .collect();
        let exported: HashSet<String> = nm(&["--defined-only"], &libs).into_iter().collect();
        assert!(
            imported.iter().any(|s| s.contains("16ProcessGroupNCCLC")),
            "the shim should construct c10d::ProcessGroupNCCL: {imported:?}"
        );
        let missing: Vec<&String> = imported.iter().filter(|s| !exported.contains(*s)).collect();
        assert!(
            missing.is_empty(),
            "the NCCL shim needs symbols libtorch does not export: {missing:?}"
        );
    }
}

//! CUDA graphs, which tch does not bind: a capture of one stream's kernels that a single launch
//! replays (`train.cuda_graphs`, used by the from-scratch training step, `train::graphed_step`).
//!
//! The calls live in `shim.cpp`, built by build.rs against the wheel's headers into a small shared
//! library that this binary embeds. It is written to the temporary folder and `dlopen`ed only when a
//! run asks for CUDA graphs on a CUDA device, after `device::load_cuda_backend` has loaded
//! libtorch_cuda.so globally (its symbols resolve there), so CPU machines never need CUDA libraries.

use std::ffi::{c_char, c_int, c_void};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};

use crate::embedded_shim::{self, call, create, symbol};

/// The ABI version of `shim.cpp` this file speaks.
const ABI: c_int = 1;

/// The shim's bytes, when this build has one.
pub fn embedded_shim() -> Result<&'static [u8], &'static str> {
    #[cfg(unas_cuda_graph_shim)]
    {
        Ok(include_bytes!(env!("UNAS_CUDA_GRAPH_SHIM")))
    }
    #[cfg(not(unas_cuda_graph_shim))]
    {
        Err(env!("UNAS_CUDA_GRAPH_SHIM_MISSING"))
    }
}

type ErrFn = unsafe extern "C" fn(*mut c_void, *mut c_char, usize) -> c_int;
type AbiFn = unsafe extern "C" fn() -> c_int;
type SideNewFn = unsafe extern "C" fn(c_int, *mut c_char, usize) -> *mut c_void;
type GraphNewFn = unsafe extern "C" fn(*mut c_char, usize) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void);

struct Shim {
    abi: AbiFn,
    side_new: SideNewFn,
    side_enter: ErrFn,
    side_exit: ErrFn,
    side_free: FreeFn,
    graph_new: GraphNewFn,
    capture_begin: ErrFn,
    capture_end: ErrFn,
    replay: ErrFn,
    graph_free: FreeFn,
}

/// Opens the embedded shim with `mode` (`RTLD_NOW` for use; `RTLD_LAZY` lets a test open it without
/// libtorch_cuda).
fn open(mode: c_int) -> Result<*mut c_void> {
    let bytes = embedded_shim().map_err(|why| {
        anyhow!("this unas binary has no CUDA-graph support: {why}; rebuild after `make setup`")
    })?;
    embedded_shim::open("cuda-graph", bytes, mode)
        .context("CUDA graphs need libtorch's CUDA backend loaded")
}

impl Shim {
    fn load(mode: c_int) -> Result<Shim> {
        let h = open(mode)?;
        macro_rules! f {
            ($name:literal, $ty:ty) => {
                // SAFETY: the symbol is the extern "C" function of shim.cpp with this signature.
                unsafe { std::mem::transmute::<*mut c_void, $ty>(symbol(h, "CUDA-graph", $name)?) }
            };
        }
        let shim = Shim {
            abi: f!("unas_cg_abi", AbiFn),
            side_new: f!("unas_cg_side_new", SideNewFn),
            side_enter: f!("unas_cg_side_enter", ErrFn),
            side_exit: f!("unas_cg_side_exit", ErrFn),
            side_free: f!("unas_cg_side_free", FreeFn),
            graph_new: f!("unas_cg_graph_new", GraphNewFn),
            capture_begin: f!("unas_cg_capture_begin", ErrFn),
            capture_end: f!("unas_cg_capture_end", ErrFn),
            replay: f!("unas_cg_replay", ErrFn),
            graph_free: f!("unas_cg_graph_free", FreeFn),
        };
        // SAFETY: a plain function of no arguments.
        let abi = unsafe { (shim.abi)() };
        if abi != ABI {
            bail!("the CUDA-graph shim speaks ABI {abi}, this binary {ABI}");
        }
        Ok(shim)
    }
}

static SHIM: OnceLock<Result<Shim, String>> = OnceLock::new();

fn shim() -> Result<&'static Shim> {
    SHIM.get_or_init(|| {
        if let Err(e) = crate::device::load_cuda_backend() {
            return Err(format!(
                "CUDA graphs need libtorch's CUDA backend, which did not load: {e}"
            ));
        }
        Shim::load(libc::RTLD_NOW | libc::RTLD_LOCAL).map_err(|e| format!("{e:#}"))
    })
    .as_ref()
    .map_err(|e| anyhow!("{e}"))
}

/// A stream of libtorch's pool, entered for warm-up and capture (a capture cannot run on the
/// default stream); entering and leaving wait for the whole device.
pub struct SideStream {
    shim: &'static Shim,
    handle: *mut c_void,
}

impl SideStream {
    pub fn new(device: tch::Device) -> Result<SideStream> {
        let tch::Device::Cuda(index) = device else {
            bail!("CUDA graphs need a CUDA device, this run is on {device:?}");
        };
        let shim = shim()?;
        // SAFETY: a valid buffer of the length passed.
        let handle = create("creating a CUDA side stream", |b, n| unsafe {
            (shim.side_new)(index as c_int, b, n)
        })?;
        Ok(SideStream { shim, handle })
    }

    /// Runs `f` with this stream current on the calling thread (the device idle before and after).
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let s = self.shim;
        // SAFETY: a live handle and a valid buffer.
        call("entering the side stream", |b, n| unsafe {
            (s.side_enter)(self.handle, b, n)
        })?;
        let out = f();
        call("leaving the side stream", |b, n| unsafe {
            (s.side_exit)(self.handle, b, n)
        })?;
        Ok(out)
    }
}

impl Drop for SideStream {
    fn drop(&mut self) {
        // SAFETY: the handle came from side_new and is freed once.
        unsafe { (self.shim.side_free)(self.handle) }
    }
}

/// A captured, instantiated graph; replayed on the calling thread's current stream.
pub struct CudaGraph {
    shim: &'static Shim,
    handle: *mut c_void,
}

impl CudaGraph {
    /// Captures the kernels `f` launches on `side` (nothing runs: a capture only records). A failure
    /// of `f` still ends the capture, so the stream stays usable; the error is `f`'s.
    pub fn capture<T>(side: &SideStream, f: impl FnOnce() -> Result<T>) -> Result<(CudaGraph, T)> {
        let s = side.shim;
        // SAFETY: a valid buffer of the length passed.
        let handle = create("creating a CUDA graph", |b, n| unsafe {
            (s.graph_new)(b, n)
        })?;
        let graph = CudaGraph { shim: s, handle };
        let out = side.run(|| -> Result<T> {
            // SAFETY: live handles and valid buffers.
            call("beginning the capture", |b, n| unsafe {
                (s.capture_begin)(handle, b, n)
            })?;
            let out = f();
            let end = call("ending the capture", |b, n| unsafe {
                (s.capture_end)(handle, b, n)
            });
            let out = out.context("capturing the training step")?;
            end?;
            Ok(out)
        })??;
        Ok((graph, out))
    }

    pub fn replay(&self) -> Result<()> {
        let s = self.shim;
        // SAFETY: a live, captured graph and a valid buffer.
        call("replaying the CUDA graph", |b, n| unsafe {
            (s.replay)(self.handle, b, n)
        })
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: the handle came from graph_new and is freed once.
        unsafe { (self.shim.graph_free)(self.handle) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `make setup` installs the headers, so every build of `make test` embeds the shim; it opens
    /// (lazily: libtorch_cuda is not loaded on a CPU machine), exports every entry point, and speaks
    /// this file's ABI.
    #[test]
    fn the_embedded_shim_opens_and_speaks_this_abi() {
        let bytes = embedded_shim().unwrap_or_else(|why| panic!("no CUDA-graph shim: {why}"));
        assert_eq!(&bytes[..4], b"\x7fELF");
        let shim = Shim::load(libc::RTLD_LAZY | libc::RTLD_LOCAL).unwrap();
        // SAFETY: a plain function of no arguments that touches no CUDA symbol.
        assert_eq!(unsafe { (shim.abi)() }, ABI);
    }

    #[test]
    fn a_side_stream_on_the_cpu_is_refused_with_the_reason() {
        let err = SideStream::new(tch::Device::Cpu).err().unwrap().to_string();
        assert!(err.contains("need a CUDA device"), "{err}");
    }
}

//! Choosing the device. The same binary runs on CPU machines and on GPU machines: rustc links with
//! `--as-needed`, which drops `libtorch_cuda.so` (nothing references it by symbol), so CUDA would never
//! register. We `dlopen` it at start-up, before any torch call; where it or its CUDA libraries are
//! missing (the CPU-only install) we carry on on the CPU and remember why.

use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::{bail, Result};

use crate::config::DeviceChoice;

static CUDA_BACKEND: OnceLock<Result<String, String>> = OnceLock::new();

/// Loads libtorch's CUDA backend once; `Ok(path)` if loaded, `Err(reason)` if not.
pub fn load_cuda_backend() -> &'static Result<String, String> {
    CUDA_BACKEND.get_or_init(|| {
        let mut errors = Vec::new();
        let mut candidates = vec![PathBuf::from("libtorch_cuda.so")];
        if let Some(dir) = libtorch_dir() {
            candidates.push(dir.join("libtorch_cuda.so"));
        }
        for c in candidates {
            match dlopen(&c, libc::RTLD_NOW | libc::RTLD_GLOBAL) {
                // the handle is kept for the life of the process
                Ok(_) => return Ok(c.display().to_string()),
                Err(msg) => errors.push(msg),
            }
        }
        Err(errors.join("; "))
    })
}

/// `dlopen(path, mode)`: the handle, or dlerror's message.
pub(crate) fn dlopen(
    path: &std::path::Path,
    mode: libc::c_int,
) -> Result<*mut libc::c_void, String> {
    let name = CString::new(path.to_string_lossy().as_bytes()).expect("no NUL in a path");
    // SAFETY: dlopen with a valid C string.
    let handle = unsafe { libc::dlopen(name.as_ptr(), mode) };
    if !handle.is_null() {
        return Ok(handle);
    }
    // SAFETY: dlerror returns a thread-local C string or null.
    let err = unsafe { libc::dlerror() };
    Err(if err.is_null() {
        "unknown dlopen error".to_owned()
    } else {
        unsafe { CStr::from_ptr(err) }
            .to_string_lossy()
            .into_owned()
    })
}

/// A libtorch function tch does not bind, by its (Itanium-mangled) symbol in the libraries this process
/// loaded; `None` where this libtorch lacks it.
pub(crate) fn libtorch_symbol(name: &CStr) -> Option<*mut std::ffi::c_void> {
    // SAFETY: dlsym with a valid C string on the default scope, which holds libtorch_cpu.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

/// The folder of the libtorch_cpu.so this process loaded (from /proc/self/maps).
pub(crate) fn libtorch_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))
        .and_then(|p| PathBuf::from(p).parent().map(PathBuf::from))
}

/// Resolves the user's choice to a tch device, loading the CUDA backend when a GPU may be wanted.
pub fn resolve(choice: DeviceChoice) -> Result<tch::Device> {
    let cuda = || {
        let _ = load_cuda_backend();
        tch::Cuda::is_available()
    };
    match choice {
        DeviceChoice::Cpu => Ok(tch::Device::Cpu),
        DeviceChoice::Auto => Ok(if cuda() {
            tch::Device::Cuda(0)
        } else {
            tch::Device::Cpu
        }),
        DeviceChoice::Cuda(n) => {
            if !cuda() {
                let why = match load_cuda_backend() {
                    Ok(_) => "libtorch's CUDA backend loaded but reports no GPU (driver missing or no device visible)".to_owned(),
                    Err(e) => format!("libtorch's CUDA backend could not be loaded ({e})"),
                };
                bail!("CUDA was asked for but is not available: {why}. On a GPU machine install the full wheel with `make setup-gpu`, or run with `--device cpu`");
            }
            let n = n.unwrap_or(0);
            let count = tch::Cuda::device_count() as usize;
            if n >= count {
                bail!(
                    "cuda:{n} was asked for but this machine has {count} GPU(s) (cuda:0..cuda:{})",
                    count.saturating_sub(1)
                );
            }
            Ok(tch::Device::Cuda(n))
        }
    }
}

/// `cpu` or `cuda:N`.
pub fn describe(d: tch::Device) -> String {
    match d {
        tch::Device::Cpu => "cpu".into(),
        tch::Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// What this process sees of its devices (`unas diagnose device`, scripts/device-check.sh).
pub fn facts() -> serde_json::Value {
    let backend = load_cuda_backend();
    let cuda = tch::Cuda::is_available();
    serde_json::json!({
        "libtorch": env!("UNAS_LIBTORCH_VERSION"),
        "cuda_backend": match backend {
            Ok(path) => serde_json::json!({"loaded": path}),
            Err(why) => serde_json::json!({"not_loaded": why}),
        },
        "cuda_available": cuda,
        "gpus": if cuda { tch::Cuda::device_count() } else { 0 },
        "cudnn_available": cuda && tch::Cuda::cudnn_is_available(),
        "threads": tch::get_num_threads(),
        "build": if cfg!(debug_assertions) { "dev" } else { "release" },
        "report_layer": cfg!(feature = "report"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_always_available_and_auto_never_fails() {
        assert_eq!(resolve(DeviceChoice::Cpu).unwrap(), tch::Device::Cpu);
        let auto = resolve(DeviceChoice::Auto).unwrap();
        assert_eq!(auto.is_cuda(), tch::Cuda::is_available());
    }

    #[test]
    fn asking_for_a_gpu_that_is_not_there_says_what_to_do() {
        if tch::Cuda::is_available() {
            let err = resolve(DeviceChoice::Cuda(Some(64)))
                .unwrap_err()
                .to_string();
            assert!(err.contains("GPU(s)"), "{err}");
        } else {
            let err = resolve(DeviceChoice::Cuda(None)).unwrap_err().to_string();
            assert!(err.contains("--device cpu"), "{err}");
        }
    }
}

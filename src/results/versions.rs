//! Versions of the CUDA stack the process runs on, asked of the libraries themselves: the CUDA runtime
//! and driver (`cudaRuntimeGetVersion`, `cudaDriverGetVersion` of the `libcudart` libtorch loaded) and
//! cuDNN (`cudnnGetVersion`, once libtorch has loaded it). Only libraries already in the process are
//! looked at (`RTLD_NOLOAD`): asking never loads anything. Each answer is a value or why there is none.

use std::ffi::CString;

/// Sonames libtorch 2.11 (CUDA 13) links; older names follow for binaries built against other wheels.
const CUDART: [&str; 3] = ["libcudart.so.13", "libcudart.so.12", "libcudart.so"];
const CUDNN: [&str; 3] = ["libcudnn.so.9", "libcudnn.so.8", "libcudnn.so"];

/// A library already loaded into this process, by the first of `names` that is.
fn loaded(names: &[&str]) -> Option<*mut libc::c_void> {
    names.iter().find_map(|n| {
        let c = CString::new(*n).ok()?;
        // SAFETY: dlopen with a valid C string and RTLD_NOLOAD only returns a handle to a library that
        // is already loaded (the handle is never closed: the library stays loaded anyway).
        let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD) };
        (!h.is_null()).then_some(h)
    })
}

/// Calls `int f(int*)` named `sym` in `lib`.
fn int_out(lib: *mut libc::c_void, sym: &str) -> Option<i32> {
    let c = CString::new(sym).ok()?;
    // SAFETY: dlsym on a valid handle; the symbol, when present, has the C signature `int f(int*)`
    // (cudaRuntimeGetVersion, cudaDriverGetVersion).
    let f = unsafe { libc::dlsym(lib, c.as_ptr()) };
    if f.is_null() {
        return None;
    }
    let f: extern "C" fn(*mut i32) -> i32 = unsafe { std::mem::transmute(f) };
    let mut v = 0i32;
    (f(&mut v) == 0).then_some(v)
}

/// 13000 → "13.0".
fn cuda_text(v: i32) -> String {
    format!("{}.{}", v / 1000, (v % 1000) / 10)
}

/// The CUDA runtime libtorch uses, e.g. `13.0`.
pub fn cuda_runtime() -> Result<String, String> {
    let lib = loaded(&CUDART).ok_or("no CUDA runtime library is loaded (CPU-only libtorch)")?;
    int_out(lib, "cudaRuntimeGetVersion")
        .map(cuda_text)
        .ok_or_else(|| "cudaRuntimeGetVersion failed".into())
}

/// The highest CUDA version the installed driver supports, e.g. `13.0`.
pub fn cuda_driver() -> Result<String, String> {
    let lib = loaded(&CUDART).ok_or("no CUDA runtime library is loaded (CPU-only libtorch)")?;
    match int_out(lib, "cudaDriverGetVersion") {
        Some(0) | None => Err("no NVIDIA driver on this machine".into()),
        Some(v) => Ok(cuda_text(v)),
    }
}

/// cuDNN, e.g. `9.10.2` (loaded by libtorch at the first convolution on a GPU).
pub fn cudnn() -> Result<String, String> {
    let lib = loaded(&CUDNN).ok_or("cuDNN is not loaded (no convolution has run on a GPU)")?;
    let c = CString::new("cudnnGetVersion").expect("no NUL");
    // SAFETY: dlsym on a valid handle; `size_t cudnnGetVersion(void)`.
    let f = unsafe { libc::dlsym(lib, c.as_ptr()) };
    if f.is_null() {
        return Err("cudnnGetVersion is missing from the loaded cuDNN".into());
    }
    let f: extern "C" fn() -> usize = unsafe { std::mem::transmute(f) };
    let v = f();
    // cuDNN 9: major·10000 + minor·100 + patch; cuDNN 8: major·1000 + minor·100 + patch.
    let (major, rest) = if v >= 90000 {
        (v / 10000, v % 10000)
    } else {
        (v / 1000, v % 1000)
    };
    Ok(format!("{major}.{}.{}", rest / 100, rest % 100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_a_value_or_a_reason_and_cuda_numbers_read_as_the_toolkit_writes_them() {
        assert_eq!(cuda_text(13000), "13.0");
        assert_eq!(cuda_text(12040), "12.4");
        for v in [cuda_runtime(), cuda_driver(), cudnn()] {
            match v {
                Ok(s) => assert!(s.chars().next().unwrap().is_ascii_digit(), "{s}"),
                Err(why) => assert!(!why.is_empty()),
            }
        }
    }
}

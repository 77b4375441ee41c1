//! What the two C++ shims (`cuda_graph/shim.cpp`, `dist/shim.cpp`) share on the Rust side: the
//! embedded library written to a file of this process's own and `dlopen`ed, its symbols, and calls
//! that report failure through an error buffer the shim fills with the C++ exception's message.

use std::ffi::{c_char, c_int, c_void, CStr, CString};

use anyhow::{anyhow, bail, Context, Result};

const ERR_LEN: usize = 1024;

/// Writes `bytes` (the shim called `name`) to a file of this process's own in the temporary folder
/// (created new, so nothing planted there is opened), opens it with `mode` and removes the file
/// again (the mapping stays).
pub(crate) fn open(name: &str, bytes: &[u8], mode: c_int) -> Result<*mut c_void> {
    use std::io::Write;
    let path = std::env::temp_dir().join(format!(
        "unas-{name}-{}-{}.so",
        std::process::id(),
        &blake3::hash(bytes).to_hex()[..16]
    ));
    let _ = std::fs::remove_file(&path); // a leftover of an earlier process with this pid
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut f| f.write_all(bytes))
        .with_context(|| format!("writing {}", path.display()))?;
    let handle = crate::device::dlopen(&path, mode);
    let _ = std::fs::remove_file(&path);
    handle.map_err(|e| anyhow!("loading the {name} shim: {e}"))
}

/// The address of `symbol` in the shim `name` opened as `handle`.
pub(crate) fn symbol(handle: *mut c_void, name: &str, symbol: &str) -> Result<*mut c_void> {
    let c = CString::new(symbol).expect("no NUL in a symbol name");
    // SAFETY: dlsym on a handle from dlopen with a valid C string.
    let p = unsafe { libc::dlsym(handle, c.as_ptr()) };
    if p.is_null() {
        bail!("the {name} shim has no `{symbol}`");
    }
    Ok(p)
}

/// Calls `f` with an error buffer; its message on failure (non-zero return).
pub(crate) fn call(what: &str, f: impl FnOnce(*mut c_char, usize) -> c_int) -> Result<()> {
    let mut buf = vec![0 as c_char; ERR_LEN];
    if f(buf.as_mut_ptr(), ERR_LEN) == 0 {
        return Ok(());
    }
    // SAFETY: the shim wrote a NUL-terminated message into the buffer.
    let msg = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
    bail!("{what}: {msg}")
}

/// Calls a constructor of a shim with an error buffer; the handle, or its message (null return).
pub(crate) fn create(
    what: &str,
    f: impl FnOnce(*mut c_char, usize) -> *mut c_void,
) -> Result<*mut c_void> {
    let mut buf = vec![0 as c_char; ERR_LEN];
    let handle = f(buf.as_mut_ptr(), ERR_LEN);
    if handle.is_null() {
        // SAFETY: the shim wrote a NUL-terminated message into the buffer.
        let msg = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
        bail!("{what}: {msg}");
    }
    Ok(handle)
}

//! Sets an rpath to libtorch so that `cargo run`, `cargo test` and the built `unas` binary start without
//! LD_LIBRARY_PATH. torch-sys (a direct dependency for this reason) exports the directory it linked
//! against as DEP_TCH_LIBTORCH_LIB. `UNAS_EXTRA_RPATH` (colon-separated) adds directories, for a binary
//! built here and run on a machine whose libtorch lives elsewhere (the GPU machines: see README).
//! Also records the libtorch version (from the wheel's `torch/version.py`) for provenance.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=UNAS_EXTRA_RPATH");
    let mut dirs: Vec<String> = Vec::new();
    if let Ok(extra) = std::env::var("UNAS_EXTRA_RPATH") {
        dirs.extend(
            extra
                .split(':')
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
        );
    }
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB").ok();
    if let Some(lib) = &lib {
        dirs.push(lib.clone());
    }
    for dir in dirs {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    let version = lib
        .as_deref()
        .and_then(|l| Path::new(l).parent().map(|t| t.join("version.py")))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("__version__"))
                .and_then(|l| l.split('\'').nth(1).or_else(|| l.split('"').nth(1)))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=UNAS_LIBTORCH_VERSION={version}");
}

//! Sets an rpath to libtorch so that `cargo run`, `cargo test` and the built `unas` binary start without
//! LD_LIBRARY_PATH. torch-sys (a direct dependency for this reason) exports the directory it linked
//! against as DEP_TCH_LIBTORCH_LIB. `UNAS_EXTRA_RPATH` (colon-separated) adds directories, for a binary
//! built here and run on a machine whose libtorch lives elsewhere (the GPU machines: see README).
//! Also records the libtorch version (from the wheel's `torch/version.py`) for provenance, and builds
//! the CUDA-graph shim (`src/cuda_graph/shim.cpp`) and the c10d shim (`src/dist/shim.cpp`) into shared
//! libraries that the binary embeds.

use std::path::{Path, PathBuf};
use std::process::Command;

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
    cuda_graph_shim(lib.as_deref().map(Path::new));
    dist_shim(lib.as_deref().map(Path::new));
}

/// The CUDA runtime's headers beside the wheel (`<site>/nvidia/<cuXX>/include`, with the `crt/`
/// headers of `nvidia-cuda-crt` that `cuda_runtime.h` needs).
fn cuda_include(torch_dir: &Path) -> Option<PathBuf> {
    let nvidia = torch_dir.parent()?.join("nvidia");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&nvidia)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("include")))
        .collect();
    dirs.sort();
    dirs.into_iter().find(|d| {
        d.join("cuda_runtime_api.h").is_file() && d.join("crt").join("host_config.h").is_file()
    })
}

/// Compiles the shim against the wheel's headers into `$OUT_DIR/libunas_cuda_graph.so` and sets the
/// `unas_cuda_graph_shim` cfg. Without the headers the binary is built without it (CUDA graphs then
/// report why at run time); with them, a compile error fails the build.
fn cuda_graph_shim(lib: Option<&Path>) {
    println!("cargo::rustc-check-cfg=cfg(unas_cuda_graph_shim)");
    let src = "src/cuda_graph/shim.cpp";
    println!("cargo:rerun-if-changed={src}");
    let skip = |why: String| {
        println!("cargo:warning=CUDA graphs left out of this build: {why}");
        println!("cargo:rustc-env=UNAS_CUDA_GRAPH_SHIM_MISSING={why}");
    };
    let Some(torch_dir) = lib.and_then(Path::parent) else {
        return skip("torch-sys reported no libtorch folder".into());
    };
    let include = torch_dir.join("include");
    if !include.join("ATen/cuda/CUDAGraph.h").is_file() {
        return skip(format!(
            "{} has no ATen/cuda/CUDAGraph.h",
            include.display()
        ));
    }
    let Some(cuda) = cuda_include(torch_dir) else {
        return skip(format!(
            "no CUDA runtime headers with crt/ under {}/nvidia (make setup installs nvidia-cuda-crt)",
            torch_dir.parent().unwrap_or(torch_dir).display()
        ));
    };
    println!("cargo:rerun-if-changed={}", cuda.display());
    let out = compile_shim(
        src,
        "libunas_cuda_graph.so",
        &[
            include.clone(),
            include.join("torch/csrc/api/include"),
            cuda,
        ],
        &[],
    );
    println!("cargo:rustc-cfg=unas_cuda_graph_shim");
    println!("cargo:rustc-env=UNAS_CUDA_GRAPH_SHIM={}", out.display());
}

/// Compiles the c10d shim (stores, the Gloo process group and its collectives) against the wheel's
/// c10d headers and the Gloo declarations beside it (the wheel ships no Gloo headers) into
/// `$OUT_DIR/libunas_dist.so`, and sets the `unas_dist_shim` cfg. Without the headers the binary is
/// built without it (runs with more than one rank then report why); with them, a compile error fails
/// the build.
fn dist_shim(lib: Option<&Path>) {
    println!("cargo::rustc-check-cfg=cfg(unas_dist_shim)");
    let src = "src/dist/shim.cpp";
    let decl = Path::new("src/dist/gloo_decl");
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-changed={}", decl.display());
    let skip = |why: String| {
        println!("cargo:warning=multi-rank runs left out of this build: {why}");
        println!("cargo:rustc-env=UNAS_DIST_SHIM_MISSING={why}");
    };
    let Some(torch_dir) = lib.and_then(Path::parent) else {
        return skip("torch-sys reported no libtorch folder".into());
    };
    let include = torch_dir.join("include");
    let header = include.join("torch/csrc/distributed/c10d/ProcessGroupGloo.hpp");
    if !header.is_file() {
        return skip(format!("{} is missing", header.display()));
    }
    let out = compile_shim(
        src,
        "libunas_dist.so",
        &[
            decl.to_path_buf(),
            include.clone(),
            include.join("torch/csrc/api/include"),
        ],
        &["USE_C10D_GLOO"],
    );
    println!("cargo:rustc-cfg=unas_dist_shim");
    println!("cargo:rustc-env=UNAS_DIST_SHIM={}", out.display());
}

/// `c++ -shared` of one C++ file against libtorch's headers into `$OUT_DIR/name`; panics (failing the
/// build) with the compiler's status when it fails.
fn compile_shim(src: &str, name: &str, includes: &[PathBuf], defines: &[&str]) -> PathBuf {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join(name);
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    println!("cargo:rerun-if-changed=src/embedded_shim.h");
    let status = Command::new(&cxx)
        .args([
            "-shared",
            "-fPIC",
            "-O2",
            "-std=c++17",
            "-D_GLIBCXX_USE_CXX11_ABI=1",
        ])
        .args(defines.iter().map(|d| format!("-D{d}")))
        .args(includes.iter().map(|i| format!("-I{}", i.display())))
        .arg(src)
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("running {cxx} for {src}: {e}"));
    assert!(status.success(), "{cxx} failed on {src} ({status})");
    out
}

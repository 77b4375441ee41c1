//! Sets an rpath to libtorch so that `cargo run`, `cargo test` and the built `unas` binary start without
//! LD_LIBRARY_PATH. torch-sys (a direct dependency for this reason) exports the directory it linked
//! against as DEP_TCH_LIBTORCH_LIB. `UNAS_EXTRA_RPATH` (colon-separated) adds directories, for a binary
//! built here and run on a machine whose libtorch lives elsewhere (the GPU machines: see README).
//! Also records the libtorch version (from the wheel's `torch/version.py`) for provenance, and builds
//! the CUDA-graph shim (`src/cuda_graph/shim.cpp`), the c10d shim (`src/dist/shim.cpp`) and the NCCL
//! shim (`src/dist/nccl.cpp`, against the headers of `UNAS_CUDA_HEADERS`) into shared libraries that
//! the binary embeds.

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
    // the three C++ compiles (~10 s each) at once: the crate waits for them
    let lib = lib.as_deref().map(Path::new);
    std::thread::scope(|s| {
        s.spawn(|| cuda_graph_shim(lib));
        s.spawn(|| dist_shim(lib));
        s.spawn(|| nccl_shim(lib));
    });
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
    let skip = |why| leave_out("CUDA graphs", "UNAS_CUDA_GRAPH_SHIM_MISSING", why);
    let (torch_dir, include) = match torch_headers(lib, "ATen/cuda/CUDAGraph.h") {
        Ok(found) => found,
        Err(why) => return skip(why),
    };
    let Some(cuda) = cuda_include(&torch_dir) else {
        return skip(format!(
            "no CUDA runtime headers with crt/ under {}/nvidia (make setup installs nvidia-cuda-crt)",
            torch_dir.parent().unwrap_or(&torch_dir).display()
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
    println!("cargo:rerun-if-changed=src/dist/handles.h");
    println!("cargo:rerun-if-changed={}", decl.display());
    let skip = |why| leave_out("multi-rank runs", "UNAS_DIST_SHIM_MISSING", why);
    let include = match torch_headers(lib, "torch/csrc/distributed/c10d/ProcessGroupGloo.hpp") {
        Ok((_, include)) => include,
        Err(why) => return skip(why),
    };
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

/// Compiles the NCCL shim (libtorch_cuda's ProcessGroupNCCL added to a group of the c10d shim) into
/// `$OUT_DIR/libunas_dist_nccl.so` and sets the `unas_nccl_shim` cfg. It needs, beside the wheel's
/// headers, nccl.h and the CUDA library headers that ATen/cuda includes: `make setup` keeps them in
/// the folder `UNAS_CUDA_HEADERS` names (.cargo/config.toml). Without them the binary is built without
/// it (ranks on GPUs then use Gloo, and say why); with them, a compile error fails the build.
fn nccl_shim(lib: Option<&Path>) {
    println!("cargo::rustc-check-cfg=cfg(unas_nccl_shim)");
    let src = "src/dist/nccl.cpp";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-changed=src/dist/handles.h");
    println!("cargo:rerun-if-env-changed=UNAS_CUDA_HEADERS");
    let skip = |why| leave_out("NCCL", "UNAS_NCCL_SHIM_MISSING", why);
    let (torch_dir, include) =
        match torch_headers(lib, "torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp") {
            Ok(found) => found,
            Err(why) => return skip(why),
        };
    let Some(cuda) = cuda_include(&torch_dir) else {
        return skip("no CUDA runtime headers beside the wheel (make setup)".into());
    };
    let Some(headers) = std::env::var_os("UNAS_CUDA_HEADERS").map(PathBuf::from) else {
        return skip("UNAS_CUDA_HEADERS is not set (.cargo/config.toml sets it)".into());
    };
    println!("cargo:rerun-if-changed={}", headers.display());
    let nvidia = headers.join("nvidia");
    let libs = nvidia.join("cu13/include");
    let nccl = nvidia.join("nccl/include");
    for needed in [nccl.join("nccl.h"), libs.join("cublas_v2.h")] {
        if !needed.is_file() {
            return skip(format!(
                "{} is missing (`make setup` fetches the headers)",
                needed.display()
            ));
        }
    }
    let out = compile_shim(
        src,
        "libunas_dist_nccl.so",
        &[
            include.clone(),
            include.join("torch/csrc/api/include"),
            cuda,
            libs.clone(),
            libs.join("cccl"),
            nccl,
        ],
        &["USE_C10D_NCCL"],
    );
    println!("cargo:rustc-cfg=unas_nccl_shim");
    println!("cargo:rustc-env=UNAS_NCCL_SHIM={}", out.display());
}

/// Leaves a shim out of this build: a cargo warning, and `env` (which the binary reports) saying why.
fn leave_out(what: &str, env: &str, why: String) {
    println!("cargo:warning={what} left out of this build: {why}");
    println!("cargo:rustc-env={env}={why}");
}

/// The wheel's folder and its `include/`, where `header` (inside it) is; why not otherwise.
fn torch_headers(lib: Option<&Path>, header: &str) -> Result<(PathBuf, PathBuf), String> {
    let torch_dir = lib
        .and_then(Path::parent)
        .ok_or("torch-sys reported no libtorch folder")?;
    let include = torch_dir.join("include");
    if !include.join(header).is_file() {
        return Err(format!("{} is missing", include.join(header).display()));
    }
    Ok((torch_dir.to_path_buf(), include))
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

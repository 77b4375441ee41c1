//! `provenance.json`: enough to say later exactly what produced a number — code (git commit and whether
//! the tree was dirty), versions (crate, tch, libtorch), hardware (device, CUDA, host), the seed, the
//! determinism switch, the times and the command line.

use std::path::Path;
use std::process::Command;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::atomic;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub unas_version: String,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub tch_version: String,
    pub libtorch_version: String,
    pub device: String,
    pub cuda_available: bool,
    pub cuda_device_count: i64,
    pub cudnn_available: bool,
    /// The GPU's name (from nvidia-smi) when running on CUDA.
    pub gpu_name: Option<String>,
    pub host: String,
    pub cpus: usize,
    pub experiment: String,
    pub tier: String,
    pub stage: String,
    pub config_id: String,
    pub run_id: String,
    pub seed: u64,
    pub deterministic: bool,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub command_line: Vec<String>,
}

/// Versions this binary was built with (tch and libtorch are pinned in lock-step, see Cargo.toml).
pub const TCH_VERSION: &str = "0.24.0";
pub const LIBTORCH_VERSION: &str = env!("UNAS_LIBTORCH_VERSION");

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// (commit, dirty) of the source tree the binary was built from, or of the current folder's repository.
pub fn git_state() -> (Option<String>, Option<bool>) {
    for dir in [env!("CARGO_MANIFEST_DIR"), "."] {
        let head = Command::new("git")
            .args(["-C", dir, "rev-parse", "HEAD"])
            .output();
        if let Ok(out) = head {
            if out.status.success() {
                let commit = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                let dirty = Command::new("git")
                    .args(["-C", dir, "status", "--porcelain", "--untracked-files=no"])
                    .output()
                    .ok()
                    .filter(|o| o.status.success())
                    .map(|o| !o.stdout.is_empty());
                return (Some(commit), dirty);
            }
        }
    }
    (None, None)
}

pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

pub(crate) fn gpu_name() -> Option<String> {
    let out = Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader"])
        .output()
        .ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned()
    })
}

/// What the run needs to say about itself.
pub struct RunIdentity<'a> {
    pub experiment: &'a str,
    pub tier: &'a str,
    pub stage: &'a str,
    pub config_id: &'a str,
    pub run_id: &'a str,
    pub seed: u64,
    pub deterministic: bool,
}

impl Provenance {
    pub fn collect(who: &RunIdentity, device: tch::Device) -> Provenance {
        let (git_commit, git_dirty) = git_state();
        let on_cuda = device.is_cuda();
        Provenance {
            unas_version: env!("CARGO_PKG_VERSION").into(),
            git_commit,
            git_dirty,
            tch_version: TCH_VERSION.into(),
            libtorch_version: LIBTORCH_VERSION.into(),
            device: crate::device::describe(device),
            cuda_available: tch::Cuda::is_available(),
            cuda_device_count: tch::Cuda::device_count(),
            cudnn_available: tch::Cuda::cudnn_is_available(),
            gpu_name: if on_cuda { gpu_name() } else { None },
            host: host_name(),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            experiment: who.experiment.into(),
            tier: who.tier.into(),
            stage: who.stage.into(),
            config_id: who.config_id.into(),
            run_id: who.run_id.into(),
            seed: who.seed,
            deterministic: who.deterministic,
            started_at: now_rfc3339(),
            ended_at: None,
            command_line: std::env::args().collect(),
        }
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        atomic::write_json(&dir.join(super::layout::PROVENANCE), self)
    }
}

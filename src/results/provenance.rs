//! `provenance.json`: enough to say later exactly what produced a number — code (git commit and whether
//! the tree was dirty), versions (crate, tch, libtorch, CUDA runtime and driver, cuDNN), hardware
//! (device, GPU name and driver, host, pid), the seed, the determinism switch, the dataset's
//! fingerprint, the times and the command line. Fail-loud: whatever could not be determined is named in
//! `missing` with the reason (and warned about), never left silently empty; a provenance that cannot be
//! written fails the run before it starts.

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
    /// blake3 of the dataset (files or generator parameters), as in the run id.
    #[serde(default)]
    pub data_fingerprint: String,
    /// The stage's shape (everything but the seed): runs of one shape predict each other's time.
    #[serde(default)]
    pub shape_id: String,
    #[serde(default)]
    pub pid: u32,
    /// libtorch's compute threads (`--threads`, or a worker's share of the cores).
    #[serde(default)]
    pub threads: i32,
    /// The CUDA runtime libtorch uses (e.g. `13.0`).
    #[serde(default)]
    pub cuda_runtime_version: Option<String>,
    /// The CUDA version the driver supports.
    #[serde(default)]
    pub cuda_driver_version: Option<String>,
    #[serde(default)]
    pub cudnn_version: Option<String>,
    /// The NVIDIA driver (from nvidia-smi) when running on CUDA.
    #[serde(default)]
    pub gpu_driver: Option<String>,
    /// libtorch's global switches as read back when the stage started (`train::rng::Determinism`):
    /// cuDNN autotuning, deterministic algorithms, cuDNN deterministic (`None`: libtorch lacks the
    /// getter, or not recorded).
    #[serde(default)]
    pub cudnn_benchmark: Option<bool>,
    #[serde(default)]
    pub deterministic_algorithms: Option<bool>,
    #[serde(default)]
    pub cudnn_deterministic: Option<bool>,
    /// The forward passes' precision (`fp32`, or `bf16` autocast).
    #[serde(default = "fp32")]
    pub precision: String,
    /// Every field that could not be determined, with why (`field: reason`).
    #[serde(default)]
    pub missing: Vec<String>,
    /// How many processes ran this run together (`unas run --ranks R`, Slurm tasks); 1 for one.
    #[serde(default = "one")]
    pub world_size: usize,
    /// Their collective backend (`gloo`), with more than one rank.
    #[serde(default)]
    pub rank_backend: Option<String>,
    /// Each rank's host, pid and device, in rank order (empty for one process).
    #[serde(default)]
    pub ranks: Vec<RankRecord>,
}

/// One rank process of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankRecord {
    pub rank: usize,
    pub host: String,
    pub pid: u32,
    pub device: String,
}

fn one() -> usize {
    1
}

fn fp32() -> String {
    "fp32".into()
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

/// Peak resident memory of this process (VmHWM), MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// (name, driver) of the GPU `index` from nvidia-smi.
pub(crate) fn nvidia_smi(index: usize) -> Result<(String, String), String> {
    let out = Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,driver_version",
            "--format=csv,noheader",
            &format!("--id={index}"),
        ])
        .output()
        .map_err(|e| format!("nvidia-smi could not run: {e}"))?;
    if !out.status.success() {
        return Err(format!("nvidia-smi failed: {}", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or("");
    match line.split_once(',') {
        Some((name, driver)) => Ok((name.trim().to_owned(), driver.trim().to_owned())),
        None => Err(format!("nvidia-smi said {line:?}")),
    }
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
    pub data_fingerprint: &'a str,
    pub shape_id: &'a str,
    pub precision: &'a str,
}

/// Records `Ok` as a value and `Err` as a line of `missing`.
fn known<T>(missing: &mut Vec<String>, field: &str, v: Result<T, String>) -> Option<T> {
    v.map_err(|why| missing.push(format!("{field}: {why}")))
        .ok()
}

impl Provenance {
    pub fn collect(who: &RunIdentity, device: tch::Device) -> Provenance {
        let (git_commit, git_dirty) = git_state();
        let mut missing = Vec::new();
        if git_commit.is_none() {
            missing.push("git_commit: neither the source tree the binary was built from nor the current folder is a git checkout".into());
        }
        let gpu = match device {
            tch::Device::Cuda(i) => known(&mut missing, "gpu_name", nvidia_smi(i)),
            _ => None,
        };
        let cuda_runtime_version = known(
            &mut missing,
            "cuda_runtime_version",
            super::versions::cuda_runtime(),
        );
        let on_cuda = device.is_cuda();
        let (cuda_driver_version, cudnn_version) = if on_cuda {
            (
                known(
                    &mut missing,
                    "cuda_driver_version",
                    super::versions::cuda_driver(),
                ),
                known(&mut missing, "cudnn_version", super::versions::cudnn()),
            )
        } else {
            (None, None)
        };
        for m in &missing {
            tracing::warn!("provenance: {m}");
        }
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
            gpu_name: gpu.as_ref().map(|g| g.0.clone()),
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
            data_fingerprint: who.data_fingerprint.into(),
            shape_id: who.shape_id.into(),
            pid: std::process::id(),
            threads: tch::get_num_threads(),
            cuda_runtime_version,
            cuda_driver_version,
            cudnn_version,
            gpu_driver: gpu.map(|g| g.1),
            cudnn_benchmark: None,
            deterministic_algorithms: None,
            cudnn_deterministic: None,
            precision: who.precision.into(),
            missing,
            world_size: 1,
            rank_backend: None,
            ranks: Vec::new(),
        }
    }

    /// Refreshes what is only known once the stage ran (cuDNN is loaded at the first convolution on a
    /// GPU) and stamps the end.
    pub fn end(&mut self, device: tch::Device) {
        if device.is_cuda() && self.cudnn_version.is_none() {
            if let Ok(v) = super::versions::cudnn() {
                self.cudnn_version = Some(v);
                self.missing.retain(|m| !m.starts_with("cudnn_version"));
            }
        }
        self.ended_at = Some(now_rfc3339());
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        atomic::write_json(&dir.join(super::layout::PROVENANCE), self)
    }
}

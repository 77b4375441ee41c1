//! Which c10d backend carries a run's CUDA tensors. NCCL where every rank runs on a GPU of its own and
//! has NCCL (the paper's setting: one GPU per rank); Gloo otherwise, which stages CUDA tensors through
//! host memory (several ranks on one GPU, which NCCL refuses, or a build or machine without NCCL).
//! CPU tensors always go through Gloo. The ranks decide together, from a table of what each offers
//! ([`Candidacy`], gathered over Gloo), so every rank reaches the same [`Choice`].
//! `UNAS_DIST_BACKEND` (`auto`, the default; `gloo`; `nccl`, which fails rather than fall back) asks.

use anyhow::{bail, Result};

/// The variable a rank process reads its [`Request`] from.
pub const ENV_BACKEND: &str = "UNAS_DIST_BACKEND";

/// What the user asks of the backend for CUDA tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// NCCL where every rank can use it, Gloo otherwise.
    Auto,
    /// Gloo, even where NCCL could be used.
    Gloo,
    /// NCCL, or the run fails saying why it cannot.
    Nccl,
}

impl Request {
    pub fn parse(s: &str) -> Result<Request> {
        Ok(match s {
            "auto" | "" => Request::Auto,
            "gloo" => Request::Gloo,
            "nccl" => Request::Nccl,
            other => bail!("{ENV_BACKEND}={other}: expected auto, gloo or nccl"),
        })
    }

    /// The request this process's environment makes (`auto` when unset).
    pub fn from_env() -> Result<Request> {
        Request::parse(&std::env::var(ENV_BACKEND).unwrap_or_default())
    }
}

/// What one rank offers for its CUDA tensors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Candidacy {
    /// Its run is on the CPU.
    Cpu,
    /// On the GPU with this UUID, with NCCL loaded.
    Nccl([u8; 16]),
    /// On a GPU, without NCCL, for this reason.
    NoNccl(String),
}

impl Candidacy {
    /// This rank's, on `device` (`request` Gloo: NCCL is not even loaded).
    pub fn of(device: tch::Device, request: Request) -> Candidacy {
        let tch::Device::Cuda(index) = device else {
            return Candidacy::Cpu;
        };
        if request == Request::Gloo {
            return Candidacy::NoNccl(format!("{ENV_BACKEND}=gloo"));
        }
        match super::c10d::nccl().and_then(|n| n.gpu_uuid(index)) {
            Ok(uuid) => Candidacy::Nccl(uuid),
            Err(e) => Candidacy::NoNccl(format!("{e:#}")),
        }
    }

    /// One line without tabs (the ranks' identities are tab-separated): `cpu`, `nccl:HEX` or
    /// `gloo:WHY`.
    pub fn encode(&self) -> String {
        match self {
            Candidacy::Cpu => "cpu".into(),
            Candidacy::Nccl(uuid) => {
                let hex: String = uuid.iter().map(|b| format!("{b:02x}")).collect();
                format!("nccl:{hex}")
            }
            Candidacy::NoNccl(why) => format!("gloo:{}", why.replace(['\t', '\n'], " ")),
        }
    }

    /// The inverse of [`Candidacy::encode`]; anything else is a rank without NCCL.
    pub fn decode(s: &str) -> Candidacy {
        if s == "cpu" {
            return Candidacy::Cpu;
        }
        if let Some(hex) = s.strip_prefix("nccl:") {
            let bytes: Option<Vec<u8>> = (0..hex.len())
                .step_by(2)
                .map(|i| {
                    hex.get(i..i + 2)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                })
                .collect();
            if let Some(Ok(uuid)) = bytes.map(<[u8; 16]>::try_from) {
                return Candidacy::Nccl(uuid);
            }
        }
        Candidacy::NoNccl(s.strip_prefix("gloo:").unwrap_or(s).to_owned())
    }
}

/// What `unas diagnose device` says of NCCL here: usable (this build has its shim, it loads, and it
/// reads the first GPU's UUID), or why not.
pub fn nccl_facts() -> serde_json::Value {
    match Candidacy::of(tch::Device::Cuda(0), Request::Auto) {
        Candidacy::Nccl(_) => serde_json::json!({"usable": true}),
        Candidacy::NoNccl(why) => serde_json::json!({"usable": false, "why": why}),
        Candidacy::Cpu => unreachable!("a CUDA device's candidacy is never the CPU's"),
    }
}

/// The backend of a run's CUDA tensors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// The run is on the CPU: Gloo, nothing to choose.
    Cpu,
    /// Gloo for a run on GPUs, for this reason.
    Gloo(String),
    Nccl,
}

impl Choice {
    /// For provenance: `gloo` for a CPU run, `nccl` (CUDA tensors; CPU tensors on Gloo), or
    /// `gloo (…why not NCCL)`.
    pub fn describe(&self) -> String {
        match self {
            Choice::Nccl => "nccl".into(),
            Choice::Cpu => "gloo".into(),
            Choice::Gloo(why) => format!("gloo ({why})"),
        }
    }
}

const ON_CPU: &str = "the run is on the CPU";

/// The backend every rank takes, from every rank's candidacy in rank order; the same on every rank.
pub fn choose(request: Request, all: &[Candidacy]) -> Result<Choice> {
    if request != Request::Nccl && all.first() == Some(&Candidacy::Cpu) {
        return Ok(Choice::Cpu);
    }
    let why_not = why_not_nccl(request, all);
    match (why_not, request) {
        (None, Request::Auto | Request::Nccl) => Ok(Choice::Nccl),
        (None, Request::Gloo) => unreachable!("a Gloo request is a reason not to use NCCL"),
        (Some(why), Request::Nccl) => {
            bail!("{ENV_BACKEND}=nccl, but NCCL cannot carry this run: {why} (unset it, or set it to gloo, and rerun with --retry-failed)")
        }
        (Some(why), Request::Auto | Request::Gloo) => Ok(Choice::Gloo(why)),
    }
}

/// The first reason the ranks cannot all use NCCL, if any.
fn why_not_nccl(request: Request, all: &[Candidacy]) -> Option<String> {
    if request == Request::Gloo {
        return Some(format!("{ENV_BACKEND}=gloo"));
    }
    let mut seen: Vec<(usize, [u8; 16])> = Vec::new();
    for (rank, c) in all.iter().enumerate() {
        match c {
            Candidacy::Cpu if rank == 0 => return Some(ON_CPU.into()),
            Candidacy::Cpu => return Some(format!("rank {rank} runs on the CPU")),
            Candidacy::NoNccl(why) => return Some(format!("rank {rank} has no NCCL: {why}")),
            Candidacy::Nccl(uuid) => {
                if let Some((other, _)) = seen.iter().find(|(_, u)| u == uuid) {
                    return Some(format!(
                        "ranks {other} and {rank} share one GPU, and NCCL needs a GPU per rank"
                    ));
                }
                seen.push((rank, *uuid));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(n: u8) -> Candidacy {
        Candidacy::Nccl([n; 16])
    }

    #[test]
    fn nccl_only_when_every_rank_has_a_gpu_of_its_own_with_nccl() {
        assert_eq!(
            choose(Request::Auto, &[gpu(1), gpu(2)]).unwrap(),
            Choice::Nccl
        );
        assert_eq!(
            choose(Request::Nccl, &[gpu(1), gpu(2), gpu(3)]).unwrap(),
            Choice::Nccl
        );
        let shared = choose(Request::Auto, &[gpu(1), gpu(2), gpu(1)]).unwrap();
        assert_eq!(
            shared,
            Choice::Gloo("ranks 0 and 2 share one GPU, and NCCL needs a GPU per rank".into())
        );
        let missing = choose(
            Request::Auto,
            &[gpu(1), Candidacy::NoNccl("no libnccl".into())],
        );
        assert_eq!(
            missing.unwrap().describe(),
            "gloo (rank 1 has no NCCL: no libnccl)"
        );
        let cpu = choose(Request::Auto, &[Candidacy::Cpu, Candidacy::Cpu]).unwrap();
        assert_eq!(cpu.describe(), "gloo");
        let mixed = choose(Request::Auto, &[gpu(1), Candidacy::Cpu]).unwrap();
        assert_eq!(mixed, Choice::Gloo("rank 1 runs on the CPU".into()));
    }

    #[test]
    fn asking_for_gloo_is_obeyed_and_asking_for_nccl_fails_saying_why() {
        let gloo = choose(Request::Gloo, &[gpu(1), gpu(2)]).unwrap();
        assert_eq!(gloo.describe(), format!("gloo ({ENV_BACKEND}=gloo)"));
        let err = choose(Request::Nccl, &[gpu(1), gpu(1)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("share one GPU"), "{err}");
        let err = choose(Request::Nccl, &[Candidacy::Cpu, Candidacy::Cpu])
            .unwrap_err()
            .to_string();
        assert!(err.contains("on the CPU"), "{err}");
        assert!(Request::parse("mpi").is_err());
        assert_eq!(Request::parse("").unwrap(), Request::Auto);
    }

    #[test]
    fn a_candidacy_survives_its_line() {
        let mut uuid = [0u8; 16];
        uuid.iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = (i * 17) as u8);
        for c in [
            Candidacy::Cpu,
            Candidacy::Nccl(uuid),
            Candidacy::NoNccl("libtorch_cuda.so: cannot open shared object file".into()),
        ] {
            let line = c.encode();
            assert!(!line.contains('\t') && !line.contains('\n'), "{line}");
            assert_eq!(Candidacy::decode(&line), c);
        }
        // a torn or foreign line is a rank without NCCL, never a GPU
        assert!(matches!(Candidacy::decode("nccl:12"), Candidacy::NoNccl(_)));
    }

    #[test]
    fn on_a_machine_without_cuda_a_gpu_rank_says_why_it_has_no_nccl() {
        // this build machine has libtorch_cuda.so but not the CUDA libraries it needs, or no GPU:
        // loading the NCCL shim must fail with the reason, never crash
        if tch::Cuda::is_available() {
            return; // a GPU machine: scripts/device-check.sh covers it
        }
        match Candidacy::of(tch::Device::Cuda(0), Request::Auto) {
            Candidacy::NoNccl(why) => assert!(
                why.contains("CUDA") || why.contains("NCCL"),
                "an unhelpful reason: {why}"
            ),
            other => panic!("no GPU here, yet {other:?}"),
        }
        assert_eq!(
            Candidacy::of(tch::Device::Cpu, Request::Auto),
            Candidacy::Cpu
        );
        let facts = nccl_facts();
        assert_eq!(facts["usable"], false, "{facts}");
        assert!(
            facts["why"].as_str().is_some_and(|w| !w.is_empty()),
            "{facts}"
        );
    }
}

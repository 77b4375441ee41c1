//! The ranks of this process's run: how many processes run it, which one this is, and the few
//! operations the loops need from the others. A plain run is one rank ([`Ranks::one`]): every
//! operation is then the identity, so a loop written against `Ranks` is the one-process loop.
//!
//! A rank process learns its place from its environment (set by `unas run --ranks R`, or by Slurm):
//! `UNAS_RANK`, `UNAS_WORLD`, `UNAS_STORE` (`tcp://HOST:PORT` or `file:///PATH`) and
//! `UNAS_RANK_TIMEOUT_S`, the longest any collective waits for a peer before the run stops, and
//! (from the local launcher) `UNAS_RANK_DEATHS`, the file where it notes a rank that died.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tch::Tensor;

use super::backend::{choose, Candidacy, Choice, Request};
use super::c10d::{nccl, Group, Store};

/// How long a collective waits for a peer by default (c10d's own default is 30 minutes).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The environment variables a rank process reads.
pub const ENV_RANK: &str = "UNAS_RANK";
pub const ENV_WORLD: &str = "UNAS_WORLD";
pub const ENV_STORE: &str = "UNAS_STORE";
pub const ENV_TIMEOUT: &str = "UNAS_RANK_TIMEOUT_S";
pub const ENV_DEATHS: &str = "UNAS_RANK_DEATHS";
/// libtorch's switch that makes an NCCL collective's wait block the CPU and honour its timeout.
const ENV_NCCL_BLOCKING_WAIT: &str = "TORCH_NCCL_BLOCKING_WAIT";

/// How long a rank whose collective failed waits for the launcher's note of which rank died.
const DEATH_NOTE_WAIT: Duration = Duration::from_secs(3);

/// Where the ranks meet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreAddr {
    /// A TCPStore: rank 0 listens, the others connect.
    Tcp { host: String, port: u16 },
    /// A FileStore on a filesystem every rank sees.
    File(PathBuf),
}

impl StoreAddr {
    pub fn parse(s: &str) -> Result<StoreAddr> {
        if let Some(rest) = s.strip_prefix("tcp://") {
            let (host, port) = rest
                .rsplit_once(':')
                .with_context(|| format!("{ENV_STORE}={s}: expected tcp://HOST:PORT"))?;
            let port = port
                .parse()
                .with_context(|| format!("{ENV_STORE}={s}: `{port}` is not a port"))?;
            return Ok(StoreAddr::Tcp {
                host: host.to_owned(),
                port,
            });
        }
        if let Some(path) = s.strip_prefix("file://") {
            return Ok(StoreAddr::File(PathBuf::from(path)));
        }
        bail!("{ENV_STORE}={s}: expected tcp://HOST:PORT or file:///PATH")
    }

    pub fn url(&self) -> String {
        match self {
            StoreAddr::Tcp { host, port } => format!("tcp://{host}:{port}"),
            StoreAddr::File(p) => format!("file://{}", p.display()),
        }
    }
}

/// This process's place among the ranks of its run, as its environment states it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RankEnv {
    pub rank: usize,
    pub world: usize,
    pub store: StoreAddr,
    pub timeout: Duration,
    /// The launcher's notes of ranks that died (none under Slurm).
    pub deaths: Option<PathBuf>,
}

impl RankEnv {
    /// The rank environment, or `None` for a plain one-process run.
    pub fn from_env() -> Result<Option<RankEnv>> {
        let Ok(rank) = std::env::var(ENV_RANK) else {
            return Ok(None);
        };
        let num = |name: &str, v: &str| -> Result<usize> {
            v.parse()
                .with_context(|| format!("{name}={v} is not a whole number"))
        };
        let rank = num(ENV_RANK, &rank)?;
        let world = std::env::var(ENV_WORLD)
            .with_context(|| format!("{ENV_RANK} is set but {ENV_WORLD} is not"))?;
        let world = num(ENV_WORLD, &world)?;
        if world == 0 || rank >= world {
            bail!("{ENV_RANK}={rank} is not a rank of {ENV_WORLD}={world}");
        }
        let store = std::env::var(ENV_STORE)
            .with_context(|| format!("{ENV_RANK} is set but {ENV_STORE} is not"))?;
        let timeout = match std::env::var(ENV_TIMEOUT) {
            Ok(v) => {
                Duration::from_secs_f64(v.parse::<f64>().ok().filter(|s| *s > 0.0).with_context(
                    || format!("{ENV_TIMEOUT}={v} is not a positive number of seconds"),
                )?)
            }
            Err(_) => DEFAULT_TIMEOUT,
        };
        Ok(Some(RankEnv {
            rank,
            world,
            store: StoreAddr::parse(&store)?,
            timeout,
            deaths: std::env::var_os(ENV_DEATHS).map(PathBuf::from),
        }))
    }

    /// The variables that give a child process this place.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![
            (ENV_RANK, self.rank.to_string()),
            (ENV_WORLD, self.world.to_string()),
            (ENV_STORE, self.store.url()),
            (ENV_TIMEOUT, self.timeout.as_secs_f64().to_string()),
        ];
        if let Some(d) = &self.deaths {
            v.push((ENV_DEATHS, d.display().to_string()));
        }
        // NCCL's collectives then block the CPU and fail after the group's timeout (otherwise its
        // watchdog ends the process); set before the process starts a thread, unless the user did
        if std::env::var_os(ENV_NCCL_BLOCKING_WAIT).is_none() {
            v.push((ENV_NCCL_BLOCKING_WAIT, "1".into()));
        }
        v
    }
}

/// A collective that failed: a peer rank died, hung past the timeout, or left. The run stops as
/// `interrupted` (the next `unas run` resumes it from its last checkpoint).
#[derive(Clone, Debug, thiserror::Error)]
#[error("{}rank {rank} of {world} left {what} ({message})", died.as_deref().map(|d| format!("{d}; ")).unwrap_or_default())]
pub struct PeerLost {
    pub rank: usize,
    pub world: usize,
    pub what: String,
    pub message: String,
    /// The launcher's note of the rank that died (which, on which host, how), when there is one.
    pub died: Option<String>,
}

/// The ranks of this process's run.
pub struct Ranks {
    rank: usize,
    world: usize,
    /// `None` for one rank.
    group: Option<Mutex<Group>>,
    /// What the user asked of the backend of CUDA tensors, and what the ranks chose for the job.
    request: Request,
    choice: Mutex<Choice>,
    deaths: Option<PathBuf>,
    /// Time spent in collectives so far (waiting for the others included).
    spent: Mutex<Duration>,
    /// The first collective that failed: the group is then unusable, and every later collective
    /// fails at once with this (so a step can finish its arithmetic and report it at its end).
    lost: Mutex<Option<PeerLost>>,
}

impl Ranks {
    /// One process running the whole run.
    pub fn one() -> Ranks {
        Ranks {
            rank: 0,
            world: 1,
            group: None,
            request: Request::Auto,
            choice: Mutex::new(Choice::Cpu),
            deaths: None,
            spent: Mutex::new(Duration::ZERO),
            lost: Mutex::new(None),
        }
    }

    /// Joins the other ranks of `env` in a Gloo group (CPU tensors; CUDA tensors through the host
    /// until [`Ranks::take_backend`] puts them on NCCL).
    pub fn join(env: &RankEnv) -> Result<Ranks> {
        let request = Request::from_env()?;
        let store = match &env.store {
            StoreAddr::Tcp { host, port } => {
                Store::tcp(host, *port, env.world, env.rank == 0, env.timeout)?
            }
            StoreAddr::File(path) => Store::file(path, env.world, env.timeout)?,
        };
        let host = match &env.store {
            StoreAddr::Tcp { host, .. } if host == "127.0.0.1" || host == "localhost" => {
                "127.0.0.1".to_owned()
            }
            _ => String::new(), // Gloo's default: the interface this host's name resolves to
        };
        let group = Group::gloo(store, &host, env.rank, env.world, env.timeout)?;
        Ok(Ranks {
            rank: env.rank,
            world: env.world,
            group: Some(Mutex::new(group)),
            request,
            choice: Mutex::new(Choice::Cpu),
            deaths: env.deaths.clone(),
            spent: Mutex::new(Duration::ZERO),
            lost: Mutex::new(None),
        })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world(&self) -> usize {
        self.world
    }

    /// Rank 0: the one that writes the run folder.
    pub fn is_first(&self) -> bool {
        self.rank == 0
    }

    /// The collective backend of the current job, for provenance: `gloo`, `nccl` (CUDA tensors; CPU
    /// tensors on Gloo), or `gloo (why not NCCL)` for a run on GPUs.
    pub fn backend(&self) -> String {
        match self.group {
            Some(_) => self
                .choice
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .describe(),
            None => "none".into(),
        }
    }

    /// What this rank offers for CUDA tensors in a job on `device`.
    pub fn candidacy(&self, device: tch::Device) -> Candidacy {
        Candidacy::of(device, self.request)
    }

    /// Every rank at the start of a job on `device`, with every rank's [`Ranks::candidacy`] in rank
    /// order: the backend of the job's CUDA tensors, the same on every rank. NCCL, once chosen, is set
    /// up (at this point on every rank) and kept for later jobs.
    pub fn take_backend(&self, device: tch::Device, all: &[Candidacy]) -> Result<()> {
        let Some(g) = &self.group else {
            return Ok(());
        };
        let choice = choose(self.request, all)?;
        if let (Choice::Nccl, tch::Device::Cuda(index)) = (&choice, device) {
            let mut g = g.lock().unwrap_or_else(|p| p.into_inner());
            if !g.has_nccl() {
                g.add_nccl(nccl()?, index)?;
            }
        }
        *self.choice.lock().unwrap_or_else(|p| p.into_inner()) = choice;
        Ok(())
    }

    /// The sub-batches (of `groups`, which the ranks divide) this rank runs: a contiguous block of
    /// `groups / world`.
    pub fn own(&self, groups: usize) -> Range<usize> {
        let per = groups / self.world;
        self.rank * per..(self.rank + 1) * per
    }

    /// `x` with its gradient kept on rank 0 only: a term every rank computes alike (replicated), whose
    /// gradient the all-reduce of the ranks' gradients must count once. Its value is `x` everywhere.
    pub fn once(&self, x: &Tensor) -> Tensor {
        if self.is_first() {
            x.shallow_clone()
        } else {
            x.detach()
        }
    }

    fn with_group<T>(&self, what: &str, f: impl FnOnce(&Group) -> Result<T>) -> Result<Option<T>> {
        let Some(g) = &self.group else {
            return Ok(None);
        };
        self.check()?;
        let g = g.lock().unwrap_or_else(|p| p.into_inner());
        let start = std::time::Instant::now();
        let out = f(&g);
        *self.spent.lock().unwrap_or_else(|p| p.into_inner()) += start.elapsed();
        out.map(Some).map_err(|e| {
            let lost = PeerLost {
                rank: self.rank,
                world: self.world,
                what: what.to_owned(),
                message: format!("{e:#}"),
                died: self.death_note(),
            };
            *self.lost.lock().unwrap_or_else(|p| p.into_inner()) = Some(lost.clone());
            lost.into()
        })
    }

    /// The launcher's note of which rank died, waited for a moment (the launcher notices a death
    /// within 50 ms; a peer's closed connection reaches this rank sooner).
    fn death_note(&self) -> Option<String> {
        let path = self.deaths.as_ref()?;
        let start = std::time::Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(path) {
                let text = text.trim();
                if !text.is_empty() {
                    return Some(text.replace('\n', "; "));
                }
            }
            if start.elapsed() > DEATH_NOTE_WAIT {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Time this rank has spent in collectives (waiting for the others included).
    pub fn collective_time(&self) -> Duration {
        *self.spent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first failed collective, if any.
    pub fn check(&self) -> Result<()> {
        match &*self.lost.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(lost) => Err(lost.clone().into()),
            None => Ok(()),
        }
    }

    /// `t ← Σ_ranks t` for every tensor, in place (the identity for one rank).
    pub fn sum(&self, what: &str, tensors: &[&Tensor]) -> Result<()> {
        self.with_group(what, |g| g.all_reduce_sum(tensors))
            .map(|_| ())
    }

    /// Copies rank 0's tensors into every rank's.
    pub fn broadcast(&self, what: &str, tensors: &[&Tensor]) -> Result<()> {
        self.with_group(what, |g| g.broadcast(tensors, 0))
            .map(|_| ())
    }

    /// Rank 0's `values` copied into every rank's, bit for bit (every rank passes as many): one
    /// number, one measurement, for all ranks.
    pub fn broadcast_f64s(&self, what: &str, values: &mut [f64]) -> Result<()> {
        let t = Tensor::from_slice(values);
        self.broadcast(what, &[&t])?;
        values.copy_from_slice(&Vec::<f64>::try_from(&t)?);
        Ok(())
    }

    /// Every rank's `t`, stacked in rank order ([world, ...]).
    pub fn gather(&self, what: &str, t: &Tensor) -> Result<Tensor> {
        Ok(self
            .with_group(what, |g| g.all_gather(t))?
            .unwrap_or_else(|| t.unsqueeze(0)))
    }

    /// Returns once every rank has reached it.
    pub fn barrier(&self, what: &str) -> Result<()> {
        self.with_group(what, |g| g.barrier()).map(|_| ())
    }
}

static RANKS: OnceLock<Ranks> = OnceLock::new();

/// This process's ranks: set once by [`init`] in a rank process, one rank otherwise.
pub fn ranks() -> &'static Ranks {
    RANKS.get_or_init(Ranks::one)
}

/// Joins the ranks this process's environment names (nothing for a plain run); once per process,
/// before any stage runs.
pub fn init() -> Result<&'static Ranks> {
    if let Some(r) = RANKS.get() {
        return Ok(r);
    }
    let ranks = match RankEnv::from_env()? {
        Some(env) => Ranks::join(&env)
            .with_context(|| format!("starting rank {} of {}", env.rank, env.world))?,
        None => Ranks::one(),
    };
    Ok(RANKS.get_or_init(|| ranks))
}

impl Ranks {
    /// The full vector [total] of a quantity the ranks compute in parts: entries [start, start +
    /// len) are this rank's `own` [len] (with its gradient), the others the other ranks' values
    /// (constants here). Its value is the same on every rank; a gradient through it reaches only the
    /// entries this rank computed, so the all-reduce of the ranks' gradients counts each entry once.
    /// One rank: `own` itself.
    pub fn assemble(&self, what: &str, own: &Tensor, start: i64, total: i64) -> Result<Tensor> {
        if self.world == 1 {
            return Ok(own.shallow_clone());
        }
        let len = own.size()[0];
        let pad = |n: i64| Tensor::zeros([n], (own.kind(), own.device()));
        // [0…0, own, 0…0]: own's entries in place, with their gradient
        let placed = Tensor::cat(
            &[pad(start), own.shallow_clone(), pad(total - start - len)],
            0,
        );
        let full = placed.detach().copy();
        self.sum(what, &[&full])?; // every rank's entries; x + 0 = x exactly
        Ok(full + (&placed - placed.detach())) // value: full; gradient: own entries only
    }

    /// What a step logs of its slices: the mean of all `groups` slice losses (this rank's `losses`
    /// [1] each, from slice `start` on) and the top-1 count of all of them (this rank's `correct`).
    pub fn slice_totals(
        &self,
        losses: &[Tensor],
        correct: &[Tensor],
        start: usize,
        groups: i64,
    ) -> Result<(Tensor, Tensor)> {
        let own = Tensor::cat(losses, 0);
        let losses = self.assemble("the slice losses", &own, start as i64, groups)?;
        let correct = Tensor::stack(correct, 0).sum(tch::Kind::Float);
        self.sum("the top-1 count", &[&correct])?;
        Ok((losses.mean(tch::Kind::Float), correct))
    }
}

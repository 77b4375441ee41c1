//! Resumable state of a run, saved atomically in `checkpoints/`:
//!
//! ```text
//! checkpoints/epoch-<n>[-step-<s>]/   n epochs done (counted over all phases), s steps into the next
//!     tensors.safetensors             named tensors: model variables, architecture logits, optimiser
//!                                     buffers, estimator state, device-side metric sums
//!     meta.json                       {format, mark, meta}: the loop's serde metadata, written last
//! ```
//!
//! A checkpoint is written into `checkpoints/.tmp-<name>`, every file fsynced, `meta.json` last, and
//! the folder renamed into place; [`Checkpoints::latest`] only believes folders that have `meta.json`,
//! so a process killed at any point leaves either the old set or the new one. The last two are kept.
//!
//! An f64 in the metadata that must come back bit for bit (an EMA baseline) takes
//! `#[serde(with = "exact_f64")]` (a string in Rust's shortest round-trip form), or travels as a
//! tensor. serde_json's `float_roundtrip` feature is on too (Cargo.toml), so plain JSON numbers read
//! back exactly as well; `exact_f64` keeps the checkpoints already written readable and spells NaN and
//! ±inf, which a JSON number cannot.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

/// Where a checkpoint sits in a run: `epochs` whole epochs done (over all phases), `steps` steps of
/// the next epoch done (non-zero only for a checkpoint taken mid-epoch, on a signal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Mark {
    pub epochs: u64,
    pub steps: u64,
}

impl Mark {
    pub fn epoch_end(epochs: u64) -> Mark {
        Mark { epochs, steps: 0 }
    }

    /// `epoch-<n>` or `epoch-<n>-step-<s>`.
    pub fn folder_name(self) -> String {
        if self.steps == 0 {
            format!("epoch-{}", self.epochs)
        } else {
            format!("epoch-{}-step-{}", self.epochs, self.steps)
        }
    }

    pub fn parse(name: &str) -> Option<Mark> {
        let rest = name.strip_prefix("epoch-")?;
        let (e, s) = match rest.split_once("-step-") {
            Some((e, s)) => (e, s.parse().ok()?),
            None => (rest, 0),
        };
        Some(Mark {
            epochs: e.parse().ok()?,
            steps: s,
        })
    }
}

const TENSORS: &str = "tensors.safetensors";
const META: &str = "meta.json";
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Envelope<M> {
    format: u32,
    mark: Mark,
    meta: M,
}

/// A complete checkpoint on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointRef {
    pub mark: Mark,
    pub path: PathBuf,
}

/// A loaded checkpoint: the loop's metadata and the named tensors (on the CPU).
#[derive(Debug)]
pub struct Loaded<M> {
    pub mark: Mark,
    pub meta: M,
    pub tensors: BTreeMap<String, Tensor>,
}

impl<M> Loaded<M> {
    /// Copies the saved `<prefix>/<name>` tensors into the live tensors `dst` (model variables,
    /// architecture logits), in place and without recording gradients. Fails on a missing name or a
    /// shape mismatch.
    pub fn restore_into(&self, prefix: &str, dst: &[(String, Tensor)]) -> Result<()> {
        restore_into(&self.tensors, prefix, dst)
    }
}

/// See [`Loaded::restore_into`].
pub fn restore_into(
    saved: &BTreeMap<String, Tensor>,
    prefix: &str,
    dst: &[(String, Tensor)],
) -> Result<()> {
    tch::no_grad(|| {
        for (name, t) in dst {
            let k = format!("{prefix}/{name}");
            let src = saved.get(&k).with_context(|| {
                format!("the checkpoint has no `{k}`: it was written by another model; delete the run's checkpoints/ folder to start afresh")
            })?;
            if src.size() != t.size() {
                bail!(
                    "checkpoint tensor `{k}` has shape {:?}, the model's has {:?}",
                    src.size(),
                    t.size()
                );
            }
            let mut t = t.shallow_clone();
            t.copy_(&src.to_kind(t.kind()));
        }
        Ok(())
    })
}

/// Prefixes names: `("w", t)` → `("<prefix>/w", t)`, to keep groups of tensors apart in one file.
pub fn prefixed(prefix: &str, named: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    named
        .iter()
        .map(|(n, t)| (format!("{prefix}/{n}"), t.shallow_clone()))
        .collect()
}

/// The `checkpoints/` folder of a run.
#[derive(Clone, Debug)]
pub struct Checkpoints {
    dir: PathBuf,
    keep: usize,
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("fsync folder {}", dir.display()))
}

fn sync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("fsync {}", path.display()))
}

impl Checkpoints {
    /// Checkpoints in `dir` (a run's `checkpoints/`), keeping the last two.
    pub fn new(dir: impl Into<PathBuf>) -> Checkpoints {
        Checkpoints {
            dir: dir.into(),
            keep: 2,
        }
    }

    /// Writes a checkpoint at `mark` atomically and prunes all but the last two complete ones (and
    /// any temporaries a killed process left). Tensors are copied to the CPU; a checkpoint already at
    /// `mark` is replaced.
    pub fn save<M: Serialize>(
        &self,
        mark: Mark,
        tensors: &[(String, Tensor)],
        meta: &M,
    ) -> Result<PathBuf> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let name = mark.folder_name();
        let tmp = self.dir.join(format!(".tmp-{name}"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
        }
        fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        // A save that fails (a full disk) leaves no partial checkpoint behind, and frees its space.
        let written = Self::write_into(&tmp, mark, tensors, meta);
        if written.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        written?;

        let dest = self.dir.join(&name);
        if dest.exists() {
            let old = self.dir.join(format!(".old-{name}"));
            if old.exists() {
                fs::remove_dir_all(&old)?;
            }
            fs::rename(&dest, &old).with_context(|| format!("moving {} aside", dest.display()))?;
        }
        fs::rename(&tmp, &dest)
            .with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
        sync_dir(&self.dir)?;
        self.prune()?;
        Ok(dest)
    }

    /// The tensors, then the commit marker `meta.json`, into the folder `tmp`, each fsynced.
    fn write_into<M: Serialize>(
        tmp: &Path,
        mark: Mark,
        tensors: &[(String, Tensor)],
        meta: &M,
    ) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        let cpu: Vec<(String, Tensor)> = tensors
            .iter()
            .map(|(n, t)| {
                if !seen.insert(n.as_str()) {
                    bail!("two tensors named `{n}` in one checkpoint");
                }
                Ok((n.clone(), t.detach().to_device(Device::Cpu).contiguous()))
            })
            .collect::<Result<_>>()?;
        let tensor_path = tmp.join(TENSORS);
        Tensor::write_safetensors(&cpu, &tensor_path)
            .with_context(|| format!("writing {}", tensor_path.display()))?;
        sync_file(&tensor_path)?;

        // The commit marker, written last.
        let meta_path = tmp.join(META);
        let envelope = Envelope {
            format: FORMAT,
            mark,
            meta,
        };
        let text =
            serde_json::to_string_pretty(&envelope).context("encoding checkpoint metadata")?;
        fs::write(&meta_path, text).with_context(|| format!("writing {}", meta_path.display()))?;
        sync_file(&meta_path)?;
        sync_dir(tmp)?;
        Ok(())
    }

    /// Complete checkpoints, oldest first.
    pub fn list(&self) -> Result<Vec<CheckpointRef>> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("listing {}", self.dir.display())),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(mark) = name.to_str().and_then(Mark::parse) else {
                continue;
            };
            let path = entry.path();
            if path.join(META).is_file() && path.join(TENSORS).is_file() {
                out.push(CheckpointRef { mark, path });
            }
        }
        out.sort_by_key(|c| c.mark);
        Ok(out)
    }

    /// The newest complete checkpoint, if any.
    pub fn latest(&self) -> Result<Option<CheckpointRef>> {
        Ok(self.list()?.pop())
    }

    /// Reads a checkpoint: metadata and tensors (on the CPU).
    pub fn load<M: DeserializeOwned>(&self, at: &CheckpointRef) -> Result<Loaded<M>> {
        let meta_path = at.path.join(META);
        let text = fs::read_to_string(&meta_path)
            .with_context(|| format!("reading {}", meta_path.display()))?;
        let envelope: Envelope<M> = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} does not hold this run's checkpoint metadata (written by another version?); delete the checkpoint folder to resume from the one before",
                meta_path.display()
            )
        })?;
        if envelope.format != FORMAT {
            bail!(
                "{}: checkpoint format {} but this build reads {FORMAT}",
                meta_path.display(),
                envelope.format
            );
        }
        let tensor_path = at.path.join(TENSORS);
        let tensors = Tensor::read_safetensors(&tensor_path)
            .with_context(|| format!("reading {}", tensor_path.display()))?
            .into_iter()
            .collect();
        Ok(Loaded {
            mark: envelope.mark,
            meta: envelope.meta,
            tensors,
        })
    }

    /// The newest complete checkpoint, loaded.
    pub fn load_latest<M: DeserializeOwned>(&self) -> Result<Option<Loaded<M>>> {
        match self.latest()? {
            Some(at) => Ok(Some(self.load(&at)?)),
            None => Ok(None),
        }
    }

    /// Removes all but the last `keep` complete checkpoints, and leftovers of killed saves.
    fn prune(&self) -> Result<()> {
        let complete = self.list()?;
        let drop_n = complete.len().saturating_sub(self.keep);
        for c in &complete[..drop_n] {
            fs::remove_dir_all(&c.path)
                .with_context(|| format!("removing old checkpoint {}", c.path.display()))?;
        }
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".tmp-") || name.starts_with(".old-") {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        Ok(())
    }
}

/// Serde for an f64 that must survive JSON bit for bit: written as a string in Rust's shortest
/// round-trip form (`"0.30000000000000004"`, `"NaN"`, `"inf"`), parsed with Rust's correctly rounded
/// parser. Use as `#[serde(with = "crate::train::checkpoint::exact_f64")]`.
pub mod exact_f64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:?}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let text = String::deserialize(d)?;
        text.parse::<f64>()
            .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a number: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Meta {
        epoch: u32,
        phase: String,
        #[serde(with = "exact_f64")]
        baseline: f64,
    }

    fn meta(epoch: u32) -> Meta {
        Meta {
            epoch,
            phase: "search".into(),
            baseline: 0.1 + 0.2,
        }
    }

    fn tensors(seed: i64) -> Vec<(String, Tensor)> {
        tch::manual_seed(seed);
        vec![
            (
                "model/w".into(),
                Tensor::randn([3, 4], (Kind::Float, Device::Cpu)),
            ),
            (
                "arch/alpha".into(),
                Tensor::randn([2, 7], (Kind::Double, Device::Cpu)),
            ),
            ("opt/w/step".into(), Tensor::from(41i64)),
        ]
    }

    #[test]
    fn a_checkpoint_round_trips_tensors_and_metadata_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let ck = Checkpoints::new(dir.path().join("checkpoints"));
        let ts = tensors(3);
        ck.save(Mark::epoch_end(5), &ts, &meta(5)).unwrap();
        let back: Loaded<Meta> = ck.load_latest().unwrap().unwrap();
        assert_eq!(back.mark, Mark::epoch_end(5));
        assert_eq!(back.meta, meta(5));
        assert_eq!(back.meta.baseline.to_bits(), (0.1f64 + 0.2).to_bits());
        for (n, t) in &ts {
            let b = &back.tensors[n];
            assert_eq!(b.kind(), t.kind(), "{n}");
            assert!(b.equal(t), "{n}");
        }
        // Restoring into live tensors copies in place.
        let live = vec![(
            "w".to_owned(),
            Tensor::zeros([3, 4], (Kind::Float, Device::Cpu)),
        )];
        back.restore_into("model", &live).unwrap();
        assert!(live[0].1.equal(&ts[0].1));
        let wrong = vec![(
            "w".to_owned(),
            Tensor::zeros([4, 3], (Kind::Float, Device::Cpu)),
        )];
        let err = back.restore_into("model", &wrong).unwrap_err().to_string();
        assert!(err.contains("shape"), "{err}");
    }

    #[test]
    fn a_half_written_checkpoint_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let ck = Checkpoints::new(dir.path());
        ck.save(Mark::epoch_end(1), &tensors(1), &meta(1)).unwrap();
        // Killed after the tensors but before the metadata: in place ...
        let half = dir.path().join("epoch-2");
        fs::create_dir(&half).unwrap();
        Tensor::write_safetensors(&tensors(2), half.join(TENSORS)).unwrap();
        // ... and as a temporary.
        let tmp = dir.path().join(".tmp-epoch-3");
        fs::create_dir(&tmp).unwrap();
        Tensor::write_safetensors(&tensors(3), tmp.join(TENSORS)).unwrap();
        let latest = ck.latest().unwrap().unwrap();
        assert_eq!(latest.mark, Mark::epoch_end(1));
        let loaded: Loaded<Meta> = ck.load(&latest).unwrap();
        assert_eq!(loaded.meta.epoch, 1);
    }

    #[test]
    fn only_the_last_two_checkpoints_are_kept_and_mid_epoch_ones_order_between_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let ck = Checkpoints::new(dir.path());
        assert_eq!(ck.latest().unwrap(), None);
        for (e, s) in [(1, 0), (2, 0), (2, 7), (3, 0)] {
            ck.save(
                Mark {
                    epochs: e,
                    steps: s,
                },
                &tensors(e as i64),
                &meta(e as u32),
            )
            .unwrap();
        }
        let marks: Vec<_> = ck.list().unwrap().into_iter().map(|c| c.mark).collect();
        assert_eq!(
            marks,
            vec![
                Mark {
                    epochs: 2,
                    steps: 7
                },
                Mark::epoch_end(3)
            ]
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "no temporaries left: {names:?}");
        // Saving again at the same mark (a resumed run) replaces it.
        ck.save(Mark::epoch_end(3), &tensors(9), &meta(9)).unwrap();
        let back: Loaded<Meta> = ck.load_latest().unwrap().unwrap();
        assert_eq!(back.meta.epoch, 9);
    }

    #[test]
    fn folder_names_parse_back_to_their_mark() {
        for m in [
            Mark::epoch_end(0),
            Mark::epoch_end(12),
            Mark {
                epochs: 3,
                steps: 45,
            },
        ] {
            assert_eq!(Mark::parse(&m.folder_name()), Some(m));
        }
        assert_eq!(Mark::parse(".tmp-epoch-3"), None);
        assert_eq!(Mark::parse("epoch-x"), None);
    }

    #[test]
    fn exact_f64_survives_json_where_plain_numbers_may_not() {
        #[derive(Serialize, Deserialize)]
        struct W(#[serde(with = "exact_f64")] f64);
        for v in [
            0.1 + 0.2,
            1e-308,
            2.0f64.sqrt(),
            -0.0,
            f64::INFINITY,
            5e-324,
        ] {
            let back: W = serde_json::from_str(&serde_json::to_string(&W(v)).unwrap()).unwrap();
            assert_eq!(back.0.to_bits(), v.to_bits(), "{v:?}");
        }
        let nan: W = serde_json::from_str(&serde_json::to_string(&W(f64::NAN)).unwrap()).unwrap();
        assert!(nan.0.is_nan());
    }

    /// A tiny training run with the whole toolkit: per-step seeding (dropout-like noise), Adam, clipping.
    fn train_steps(
        vs: &tch::nn::VarStore,
        opt: &mut crate::train::optim::Adam,
        from: u64,
        to: u64,
    ) -> Vec<f64> {
        use crate::train::optim::Optimizer;
        use crate::train::rng::seed_step;
        use crate::train::{clip_grad_norm, Phase};
        let params = crate::train::optim::var_store_params(vs);
        let w = &params.iter().find(|(n, _)| n == "w").unwrap().1;
        let mut norms = Vec::new();
        for step in from..to {
            seed_step(5, Phase::Search, 0, step);
            let x = Tensor::randn([8, 3], (Kind::Float, Device::Cpu));
            let mask = Tensor::rand([8, 2], (Kind::Float, Device::Cpu)).gt(0.2);
            let loss = (x.matmul(w) * mask).square().mean(Kind::Float);
            opt.zero_grad();
            loss.backward();
            norms.push(clip_grad_norm(params.iter().map(|(_, p)| p), 0.5).double_value(&[]));
            opt.step();
        }
        norms
    }

    #[test]
    fn a_run_resumed_from_disk_continues_bit_identically() {
        use crate::train::optim::{Adam, AdamConfig, Optimizer, ParamGroup};
        let make = || {
            let vs = tch::nn::VarStore::new(Device::Cpu);
            tch::manual_seed(0);
            let _w = vs.root().randn("w", &[3, 2], 0.0, 1.0);
            let opt = Adam::new(
                vec![ParamGroup::new(
                    "w",
                    crate::train::optim::var_store_params(&vs),
                    1e-2,
                    3e-4,
                )],
                AdamConfig::default(),
            );
            (vs, opt)
        };
        let (vs1, mut o1) = make();
        let straight = train_steps(&vs1, &mut o1, 0, 6);

        let dir = tempfile::tempdir().unwrap();
        let ck = Checkpoints::new(dir.path());
        let (vs2, mut o2) = make();
        let mut resumed = train_steps(&vs2, &mut o2, 0, 3);
        let mut state = prefixed("model", &crate::train::optim::var_store_params(&vs2));
        state.extend(o2.state_tensors("opt_w"));
        ck.save(
            Mark {
                epochs: 0,
                steps: 3,
            },
            &state,
            &meta(0),
        )
        .unwrap();
        drop((vs2, o2));

        let (vs3, mut o3) = make();
        let back: Loaded<Meta> = ck.load_latest().unwrap().unwrap();
        back.restore_into("model", &crate::train::optim::var_store_params(&vs3))
            .unwrap();
        o3.load_state_tensors("opt_w", &back.tensors).unwrap();
        resumed.extend(train_steps(&vs3, &mut o3, back.mark.steps, 6));

        assert_eq!(
            straight.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            resumed.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        let w1 = &crate::train::optim::var_store_params(&vs1)[0].1;
        let w3 = &crate::train::optim::var_store_params(&vs3)[0].1;
        assert!(w1.equal(w3));
    }
}

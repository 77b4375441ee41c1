//! `unas latency table` and `unas latency predict GENOTYPE`: the ProxylessNAS space's latency on one
//! device — every (block, op) pair timed into a Parquet table stamped with the device, and one
//! architecture's table-sum and surrogate predictions beside its direct measurement.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args as ClapArgs, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use super::exit::{BadInput, EXIT_OK};
use crate::config::{DeviceChoice, GenotypeChoice};
use crate::nas::latency::cache::CachedSurrogate;
use crate::nas::latency::table::{self, TableSpec};
use crate::nas::latency::{measure_ms, DeviceStamp, Surrogate, Timing};
use crate::nas::space::proxyless::search_net::indices_of;
use crate::nas::space::proxyless::ProxylessGenotype;
use crate::results::latency_rows::{latency_table_frame, LatencyTableRow};
use crate::results::{parquet, ResultsRoot, Table};

#[derive(Subcommand)]
pub enum LatencyCommand {
    /// Time every (block, op) pair of the ProxylessNAS supernet on the device (`--device`) into
    /// `<results>/latency/table-<device>-….parquet`, stamped with the device, driver, libtorch and threads.
    Table {
        #[command(flatten)]
        spec: SpecArgs,
        /// Where to write the table (default: under `<results>/latency/`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// One architecture's latency: the table sum and the surrogate's prediction beside a direct
    /// measurement, with their errors. GENOTYPE is UNAS_PROXYLESS, PROXYLESS_GPU or a genotype.json.
    Predict {
        genotype: String,
        #[command(flatten)]
        spec: SpecArgs,
        /// A latency table (default: this device's under `<results>/latency/`, measured if missing).
        #[arg(long)]
        table: Option<PathBuf>,
        /// A surrogate (a search's latency_surrogate.json or a cache file; default: the cache's for
        /// this device and space).
        #[arg(long)]
        surrogate: Option<PathBuf>,
    },
}

#[derive(ClapArgs, Clone, Copy, Debug)]
pub struct SpecArgs {
    /// Images per timed forward pass (the official 24).
    #[arg(long, default_value_t = 24)]
    batch: i64,
    #[arg(long, default_value_t = 1.0)]
    width_multiplier: f64,
    /// Input side in pixels (a multiple of 32).
    #[arg(long, default_value_t = 224)]
    resolution: i64,
    /// Timed passes per measurement (the median is kept).
    #[arg(long, default_value_t = 10)]
    repeats: u32,
    #[arg(long, default_value_t = 1000)]
    classes: i64,
}

impl SpecArgs {
    fn spec(&self) -> Result<TableSpec> {
        let bad = |m: String| anyhow::Error::from(BadInput(m));
        if self.batch < 1 {
            return Err(bad(format!("--batch must be ≥ 1, got {}", self.batch)));
        }
        if !(self.width_multiplier.is_finite() && self.width_multiplier > 0.0) {
            return Err(bad(format!(
                "--width-multiplier must be > 0, got {}",
                self.width_multiplier
            )));
        }
        if self.resolution < 32 || self.resolution % 32 != 0 {
            return Err(bad(format!("--resolution must be a positive multiple of 32 (the total stride of the skeleton), got {}", self.resolution)));
        }
        if self.repeats < 1 || self.classes < 1 {
            return Err(bad("--repeats and --classes must be ≥ 1".into()));
        }
        Ok(TableSpec {
            width_multiplier: self.width_multiplier,
            resolution: self.resolution,
            batch: self.batch,
            repeats: self.repeats,
            classes: self.classes,
        })
    }
}

pub fn run(
    cmd: &LatencyCommand,
    root: &ResultsRoot,
    device: Option<DeviceChoice>,
) -> Result<ExitCode> {
    let device = crate::device::resolve(device.unwrap_or(DeviceChoice::Auto))?;
    match cmd {
        LatencyCommand::Table { spec, out } => {
            let spec = spec.spec()?;
            let path = out
                .clone()
                .unwrap_or_else(|| default_table(root, &spec, device));
            let rows = measure_table(&spec, device, &path)?;
            println!(
                "{} (block, op) latencies on {} at batch {}, {} px, width {} → {}",
                rows.len(),
                DeviceStamp::of(device).label(),
                spec.batch,
                spec.resolution,
                spec.width_multiplier,
                path.display()
            );
        }
        LatencyCommand::Predict {
            genotype,
            spec,
            table,
            surrogate,
        } => {
            let spec = spec.spec()?;
            let g = parse_genotype(genotype)?;
            predict(
                root,
                device,
                &spec,
                (genotype, &g),
                table.as_deref(),
                surrogate.as_deref(),
            )?;
        }
    }
    Ok(ExitCode::from(EXIT_OK))
}

fn default_table(root: &ResultsRoot, spec: &TableSpec, device: tch::Device) -> PathBuf {
    let d = crate::device::describe(device).replace(':', "");
    root.0.join("latency").join(format!(
        "table-{d}-w{}-r{}-b{}-c{}.parquet",
        spec.width_multiplier, spec.resolution, spec.batch, spec.classes
    ))
}

fn measure_table(
    spec: &TableSpec,
    device: tch::Device,
    path: &Path,
) -> Result<Vec<LatencyTableRow>> {
    let bar = ProgressBar::new(0).with_message("timing (block, op) pairs");
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} [ETA {eta}]")
            .expect("a valid template"),
    );
    let rows = table::measure(spec, device, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    parquet::write(path, Table::LatencyTable, &mut latency_table_frame(&rows)?)?;
    Ok(rows)
}

/// A published name or a genotype.json; a genotype that cannot be built is bad input naming its block.
fn parse_genotype(arg: &str) -> Result<ProxylessGenotype> {
    let published = match arg {
        "UNAS_PROXYLESS" => Some(GenotypeChoice::UnasProxyless),
        "PROXYLESS_GPU" => Some(GenotypeChoice::ProxylessGpu),
        _ => None,
    };
    if let Some(g) = published.and_then(ProxylessGenotype::from_choice) {
        return Ok(g);
    }
    let path = Path::new(arg);
    let text = std::fs::read_to_string(path).map_err(|e| {
        BadInput(format!("{arg}: not a ProxylessNAS genotype name (UNAS_PROXYLESS, PROXYLESS_GPU) nor a readable genotype.json ({e})"))
    })?;
    let g: ProxylessGenotype = serde_json::from_str(&text)
        .map_err(|e| BadInput(format!("{arg}: not a ProxylessNAS genotype ({e}); expected {{\"reduce\": [6 ops], \"normal\": [15 ops]}}")))?;
    indices_of(&g).map_err(|e| BadInput(format!("{arg}: {e:#}")))?;
    Ok(g)
}

/// The table's rows: the file given, else this device's default, measured now if it is missing.
fn table_rows(
    root: &ResultsRoot,
    spec: &TableSpec,
    device: tch::Device,
    given: Option<&Path>,
) -> Result<Vec<LatencyTableRow>> {
    let path = given
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_table(root, spec, device));
    if !path.is_file() {
        if given.is_some() {
            return Err(BadInput(format!(
                "no latency table at {}; write one with `unas latency table`",
                path.display()
            ))
            .into());
        }
        return measure_table(spec, device, &path);
    }
    let df = parquet::read(&path, Table::LatencyTable)?;
    let s = |c: &str| -> Result<Vec<String>> {
        Ok(df
            .column(c)?
            .str()?
            .iter()
            .map(|v| v.unwrap_or("").to_owned())
            .collect())
    };
    let i = |c: &str| -> Result<Vec<i64>> {
        Ok(df
            .column(c)?
            .i64()?
            .iter()
            .map(|v| v.unwrap_or(0))
            .collect())
    };
    let f = |c: &str| -> Result<Vec<f64>> {
        Ok(df
            .column(c)?
            .f64()?
            .iter()
            .map(|v| v.unwrap_or(f64::NAN))
            .collect())
    };
    let (block, op, lat, dev) = (i("block")?, s("op")?, f("lat_ms")?, s("device")?);
    let here = crate::device::describe(device);
    if dev.iter().any(|d| *d != here) {
        return Err(BadInput(format!(
            "{} was measured on {}, not on {here}",
            path.display(),
            dev[0]
        ))
        .into());
    }
    Ok((0..df.height())
        .map(|k| LatencyTableRow {
            block: block[k],
            op: op[k].clone(),
            c_in: 0,
            c_out: 0,
            stride: 0,
            side_px: 0,
            batch: spec.batch,
            width_multiplier: spec.width_multiplier,
            lat_ms: lat[k],
            device: dev[k].clone(),
            device_name: String::new(),
            driver: String::new(),
            libtorch: String::new(),
            threads: 0,
        })
        .collect())
}

/// The surrogate given, else a cached one of this device and space (the newest), else none.
fn find_surrogate(
    root: &ResultsRoot,
    spec: &TableSpec,
    device: tch::Device,
    given: Option<&Path>,
) -> Result<Option<(Surrogate, String)>> {
    let read = |p: &Path| -> Result<serde_json::Value> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
    };
    if let Some(p) = given {
        let v = read(p).map_err(|e| BadInput(format!("{e:#}")))?;
        let s: Surrogate = serde_json::from_value(v["surrogate"].clone())
            .map_err(|e| BadInput(format!("{}: no `surrogate` in it ({e})", p.display())))?;
        return Ok(Some((s, p.display().to_string())));
    }
    let stamp = DeviceStamp::of(device);
    let dir = root.0.join("cache").join("latency");
    let mut best: Option<(std::time::SystemTime, Surrogate, String)> = None;
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let Ok(cached) =
            read(&entry.path()).and_then(|v| Ok(serde_json::from_value::<CachedSurrogate>(v)?))
        else {
            continue;
        };
        let k = &cached.key;
        let fits = k.stamp == stamp
            && k.space["width_multiplier"].as_f64() == Some(spec.width_multiplier)
            && k.space["resolution"].as_i64() == Some(spec.resolution)
            && k.space["classes"].as_i64() == Some(spec.classes)
            && i64::from(k.batch) == spec.batch;
        let t = entry
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        if fits && best.as_ref().is_none_or(|b| t > b.0) {
            best = Some((t, cached.surrogate, entry.path().display().to_string()));
        }
    }
    Ok(best.map(|(_, s, p)| (s, p)))
}

fn predict(
    root: &ResultsRoot,
    device: tch::Device,
    spec: &TableSpec,
    (name, g): (&str, &ProxylessGenotype),
    table: Option<&Path>,
    surrogate: Option<&Path>,
) -> Result<()> {
    let indices = indices_of(g).map_err(|e| BadInput(format!("{name}: {e:#}")))?;
    let rows = table_rows(root, spec, device, table)?;
    let table_ms = table::table_sum(&rows, &indices)?;
    let (_vs, net) = spec.supernet(device)?;
    let x = spec.input(device);
    let timing = Timing {
        warmup: 2,
        repeats: spec.repeats,
    };
    let measured = tch::no_grad(|| {
        measure_ms(device, timing, || {
            drop(net.forward_discrete(&x, &indices, false))
        })
    });
    let stamp = DeviceStamp::of(device);
    println!(
        "{name}: batch {} at {} px, width {}, {} classes, on {}",
        spec.batch,
        spec.resolution,
        spec.width_multiplier,
        spec.classes,
        stamp.label()
    );
    let err = |p: f64| {
        format!(
            "error {:+.3} ms ({:+.1} %)",
            p - measured,
            100.0 * (p - measured) / measured
        )
    };
    println!(
        "  measured    {measured:9.3} ms  (median of {} synchronised passes)",
        spec.repeats
    );
    println!("  table sum   {table_ms:9.3} ms  {}", err(table_ms));
    match find_surrogate(root, spec, device, surrogate)? {
        Some((s, from)) => {
            let features = Vec::<f64>::try_from(
                crate::nas::space::proxyless::search_space::choice_features(&indices),
            )?;
            let p = s.predict_row(&features);
            println!("  surrogate   {p:9.3} ms  {}  ({from}; its test R² {:.3})", err(p), s.fit.r2_test);
        }
        None => println!("  surrogate   none for this device and space (run a latency search, or pass --surrogate)"),
    }
    Ok(())
}

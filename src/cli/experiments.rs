//! The experiment commands: `validate`, `list`, `run`, `reproduce`. Each returns its exit code
//! or an error; bad input is a [`BadInput`] (exit 2), printed by `cli::main`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::config::{self, DeviceChoice, Resolved, Tier};
use crate::results::ResultsRoot;
use crate::runner::{self, JobEnd, JobReport};
use crate::text_table::TextTable;

use super::exit::{BadInput, EXIT_OK, EXIT_RUN_FAILED};

/// Files that live among the experiments but are not experiments.
fn special_kind(path: &Path) -> Option<&'static str> {
    match path.file_name().and_then(|n| n.to_str()) {
        Some("tiers.yaml") => Some("tiers"),
        Some("reference.yaml") => Some("reference"),
        _ => None,
    }
}

/// `unas validate FILE...`: resolves each file and prints the resolved config and its id; every bad
/// file is reported (together, after the good ones).
pub fn validate(files: &[PathBuf], tier: Tier, sets: &[String], id_only: bool) -> Result<ExitCode> {
    let mut errors = Vec::new();
    for f in files {
        match special_kind(f) {
            Some("tiers") => match config::load::read_text(f)
                .and_then(|t| config::tiers::Tiers::parse(&f.display().to_string(), &t))
            {
                Ok(_) => println!("{}: ok (tier overlays)", f.display()),
                Err(e) => errors.push(e.to_string()),
            },
            Some(_) => match config::reference::load(f) {
                Ok(r) => println!(
                    "{}: ok ({} published numbers)",
                    f.display(),
                    r.entries.len()
                ),
                Err(e) => errors.push(e.to_string()),
            },
            None => match config::load_variants(f, tier, sets) {
                Ok(variants) => {
                    for r in variants {
                        if id_only {
                            println!("{}  {}", r.id, f.display());
                        } else {
                            println!("# {}: ok ({})", f.display(), r.experiment.name);
                            print!("{}", r.to_yaml());
                            println!();
                        }
                    }
                }
                Err(e) => errors.push(e.to_string()),
            },
        }
    }
    if errors.is_empty() {
        Ok(ExitCode::from(EXIT_OK))
    } else {
        Err(BadInput(errors.join("\n")).into())
    }
}

/// Experiment files under `paths` (files as given; folders searched for `*.yaml`, sorted).
pub fn experiment_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = walkdir::WalkDir::new(p)
                .into_iter()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_file())
                .map(|e| e.into_path())
                .filter(|p| {
                    p.extension().is_some_and(|x| x == "yaml" || x == "yml")
                        && special_kind(p).is_none()
                })
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Every file resolved, or one [`BadInput`] with all their errors: nothing runs unless all are valid.
fn load_all(files: &[PathBuf], tier: Tier, sets: &[String]) -> Result<Vec<Resolved>> {
    let mut resolved = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        match config::load_variants(f, tier, sets) {
            Ok(r) => resolved.extend(r), // a sweep is all its variants
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(resolved)
    } else {
        errors.push("nothing was run: fix the experiment file(s) above first".into());
        Err(BadInput(errors.join("\n")).into())
    }
}

/// The experiment files of `paths`; an unreadable folder is bad input.
fn files_of(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    experiment_files(paths).map_err(|e| BadInput(format!("{e:#}")).into())
}

/// `unas list`: experiments, tier, stages, seeds, jobs, rough cost.
pub fn list(paths: &[PathBuf], tier: Tier) -> Result<ExitCode> {
    let resolved = load_all(&files_of(paths)?, tier, &[])?;
    let mut t = TextTable::new(&[
        "experiment",
        "file",
        "tier",
        "stages",
        "seeds (search/train)",
        "jobs",
        "cost (M image-passes)",
    ]);
    for r in &resolved {
        let e = &r.experiment;
        let mut stages = Vec::new();
        if e.search.is_some() {
            stages.push("search");
        }
        if e.train.is_some() {
            stages.push("train");
        }
        let jobs = runner::plan::job_count(r);
        t.push(vec![
            e.name.clone(),
            r.source.display().to_string(),
            r.tier.to_string(),
            stages.join(" → "),
            format!("{}/{}", e.seeds.search.len(), e.seeds.train.len()),
            jobs.to_string(),
            format!("{:.1}", runner::plan::rough_cost_m_images(r)),
        ]);
    }
    print!("{}", t.render());
    Ok(ExitCode::from(EXIT_OK))
}

fn device_for(r: &Resolved, cli: Option<DeviceChoice>) -> Result<tch::Device> {
    crate::device::resolve(cli.unwrap_or(r.experiment.device))
}

fn print_reports(reports: &[JobReport]) {
    let mut t = TextTable::new(&[
        "experiment",
        "stage",
        "seed",
        "run id",
        "result",
        "wall (s)",
        "detail",
    ]);
    for rep in reports {
        t.push(vec![
            rep.experiment.clone(),
            rep.stage.into(),
            rep.seed.to_string(),
            rep.run_id.chars().take(16).collect(),
            rep.end.word().into(),
            format!("{:.1}", rep.wall_s),
            rep.end.detail().into(),
        ]);
    }
    print!("{}", t.render());
}

/// Every experiment's deliberate deviations from the official code, under its results.
fn print_deviations(all: &[Resolved]) {
    let with: Vec<&Resolved> = all
        .iter()
        .filter(|r| !r.experiment.deviations.is_empty())
        .collect();
    if with.is_empty() {
        return;
    }
    println!("\ndeliberate deviations from the official code (the experiments' `deviations`):");
    for r in with {
        println!("  {}:", r.experiment.name);
        for d in &r.experiment.deviations {
            println!("    - {d}");
        }
    }
}

/// How a suite is run: in this process, or by worker processes.
#[derive(Clone, Debug, Default)]
pub struct RunHow {
    pub opts: runner::Options,
    /// Worker processes (`--workers`, `--gpus`, `--ranks-per-run`); `None` runs every job in this
    /// process.
    pub workers: Option<runner::workers::Pool>,
    /// Ranks each job runs as (`--ranks-per-run`; 1: one process).
    pub ranks: usize,
}

impl RunHow {
    /// From `reproduce`'s flags: `--gpus` (one worker per GPU, or per `ranks` GPUs), `--workers N`,
    /// `--ranks-per-run R`, or every job in this process.
    pub fn new(
        retry_failed: bool,
        workers: Option<u16>,
        gpus: &[String],
        ranks: usize,
    ) -> Result<RunHow> {
        let cores = runner::threads::cores();
        if !gpus.is_empty() && !gpus.len().is_multiple_of(ranks) {
            return Err(BadInput(format!(
                "--gpus lists {} GPU(s) for --ranks-per-run {ranks}: give a multiple of {ranks} GPUs (each job runs on {ranks} of them, one per rank)",
                gpus.len()
            ))
            .into());
        }
        check_gpus(gpus)?;
        let workers = match (workers, gpus.is_empty()) {
            (_, false) => Some(runner::workers::Pool::gpus(gpus, ranks, cores)),
            (Some(n), true) => Some(runner::workers::Pool::cpu(usize::from(n), ranks, cores)),
            (None, true) if ranks > 1 => Some(runner::workers::Pool::cpu(1, ranks, cores)),
            (None, true) => None,
        };
        Ok(RunHow {
            opts: runner::Options {
                retry_failed,
                only: None,
            },
            workers,
            ranks,
        })
    }
}

pub(crate) fn run_resolved(
    all: &[Resolved],
    root: &ResultsRoot,
    device: Option<DeviceChoice>,
    how: &RunHow,
) -> Result<ExitCode> {
    let mut reports = Vec::new();
    crate::progress::suite_begin(all.iter().map(|r| runner::plan::job_count(r) as u64).sum());
    match &how.workers {
        Some(pool) => reports = runner::workers::run_suite(all, root, device, pool, &how.opts),
        None => {
            for r in all {
                let dev = device_for(r, device).with_context(|| r.source.display().to_string())?;
                tracing::info!(experiment = %r.experiment.name, tier = %r.tier, device = %crate::device::describe(dev), "running");
                reports.extend(runner::run_experiment(r, root, dev, &how.opts));
            }
        }
    }
    crate::progress::suite_end();
    print_reports(&reports);
    print_deviations(all);
    let closing = closing_line(&reports, root);
    if let Some((line, _)) = &closing {
        eprintln!("{line}");
    }
    if let Some(sig) = crate::train::signals::stop_requested() {
        eprintln!(
            "stopped by {}: the interrupted run kept its checkpoint; run the same command again to resume",
            sig.name()
        );
        return Ok(ExitCode::from(sig.exit_code()));
    }
    Ok(ExitCode::from(match closing {
        Some((_, true)) => EXIT_RUN_FAILED,
        _ => EXIT_OK,
    }))
}

/// What did not finish, in the user's terms and with what to do; `true` when something failed
/// (a run taken by another process is not a failure). `None` when every job is done.
fn closing_line(reports: &[JobReport], root: &ResultsRoot) -> Option<(String, bool)> {
    let count = |f: fn(&JobEnd) -> bool| reports.iter().filter(|r| f(&r.end)).count();
    let failed = count(|e| matches!(e, JobEnd::Failed(_)));
    let unrecorded = count(|e| matches!(e, JobEnd::Unrecorded(_)));
    let taken = count(|e| matches!(e, JobEnd::Taken(_)));
    let blocked = count(|e| matches!(e, JobEnd::Blocked(_)));
    let interrupted = count(|e| matches!(e, JobEnd::Interrupted(_)));
    let stopped = count(|e| matches!(e, JobEnd::Stopped(_)));
    let mut parts = Vec::new();
    if failed > 0 {
        parts.push(format!(
            "{failed} failed: each one's status.json in its run folder says why (`unas report` lists them)"
        ));
    }
    if unrecorded > 0 {
        let first = reports.iter().find_map(|r| match &r.end {
            JobEnd::Unrecorded(why) => Some(why.as_str()),
            _ => None,
        });
        parts.push(format!(
            "{unrecorded} could not start, and nothing was recorded for them: {} — check that {} is a folder you can write to (--results or UNAS_RESULTS), and that the experiment's name fits in a folder name",
            first.unwrap_or_default(),
            root.0.display()
        ));
    }
    if blocked > 0 {
        parts.push(format!(
            "{blocked} blocked: the search they train did not finish here"
        ));
    }
    if interrupted > 0 {
        parts.push(format!(
            "{interrupted} interrupted: each kept its checkpoint and resumes at the next run"
        ));
    }
    if stopped > 0 {
        parts.push(format!("{stopped} not started (the suite was stopped)"));
    }
    if taken > 0 {
        parts.push(format!(
            "{taken} being run by another process (not failed): wait for it, then run again — finished runs are skipped"
        ));
    }
    (!parts.is_empty()).then(|| {
        let line = format!("{} job(s): {}", reports.len(), parts.join("; "));
        (
            line,
            failed + unrecorded + blocked + interrupted + stopped > 0,
        )
    })
}

/// `unas run FILE`: every stage of one experiment (`--job ID`: only that one).
pub fn run(
    file: &Path,
    tier: Tier,
    sets: &[String],
    root: &ResultsRoot,
    device: Option<DeviceChoice>,
    opts: runner::Options,
    launch: &runner::ranks::Launch,
) -> Result<ExitCode> {
    let all = load_all(&[file.to_path_buf()], tier, sets)?;
    // a rank process started by a launcher (or Slurm) states its world in its environment
    let env = crate::dist::RankEnv::from_env().map_err(|e| BadInput(format!("{e:#}")))?;
    let world = env.as_ref().map_or(launch.ranks, |e| e.world);
    check_ranks(&all, world, &opts, "--ranks", OneSlice::Refuse)?;
    if env.is_none() && launch.ranks > 1 {
        if !launch.gpus.is_empty() && launch.gpus.len() != launch.ranks {
            return Err(BadInput(format!(
                "--gpus lists {} GPU(s) for --ranks {}: give one GPU per rank",
                launch.gpus.len(),
                launch.ranks
            ))
            .into());
        }
        check_gpus(&launch.gpus)?;
        let runs: Vec<_> = all
            .iter()
            .flat_map(|r| {
                let jobs = runner::execute::selected_jobs(r, &opts).unwrap_or_default();
                jobs.into_iter()
                    .map(|j| runner::execute::job_dir(root, r, &j))
                    .collect::<Vec<_>>()
            })
            .collect();
        return runner::ranks::launch(launch, &runs);
    }
    crate::dist::init()?;
    if let Some(id) = &opts.only {
        let found = all
            .iter()
            .filter_map(|r| runner::execute::selected_jobs(r, &opts).ok())
            .map(|j| j.len())
            .sum::<usize>();
        if found != 1 {
            return Err(BadInput(format!(
                "--job {id}: {found} jobs of {} have a run id starting with it (`unas status --json` lists the ids)",
                file.display()
            ))
            .into());
        }
    }
    let how = RunHow {
        opts,
        workers: None,
        ranks: 1,
    };
    run_resolved(&all, root, device, &how)
}

/// `--gpus` names GPUs this machine has (bad input otherwise, before any process starts): each index
/// below the number of GPUs; a name that is not an index (a GPU UUID) needs CUDA only.
fn check_gpus(gpus: &[String]) -> Result<()> {
    if gpus.is_empty() {
        return Ok(());
    }
    let highest = gpus.iter().filter_map(|g| g.parse::<usize>().ok()).max();
    crate::device::resolve(DeviceChoice::Cuda(Some(highest.unwrap_or(0)))).map_err(|e| {
        BadInput(format!(
            "--gpus {}: {e:#} (or leave out --gpus to run on the CPU)",
            gpus.join(",")
        ))
    })?;
    Ok(())
}

/// What R ranks do with a job whose G (`sub_batches`) is 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum OneSlice {
    /// Refuse it, as any G that R does not divide (`unas run --ranks R` asks for R ranks for it).
    Refuse,
    /// Run it as one process (`reproduce` and `submit` with `--ranks-per-run R`: the suite's
    /// one-slice trainings).
    RunAlone,
}

/// R ranks run G sub-batches as G/R each: the `sub_batches` of every stage that will run (all of
/// them, or the one `--job` names) must be divisible by R (bad input, before anything runs, naming the
/// experiment, the stage, G and R); and `UNAS_DIST_BACKEND`, when set, must name a backend.
pub(super) fn check_ranks(
    all: &[Resolved],
    ranks: usize,
    opts: &runner::Options,
    flag: &str,
    one: OneSlice,
) -> Result<()> {
    if ranks > 1 {
        // every rank reads it when it joins: a bad value stops the command before any work
        crate::dist::BackendRequest::from_env().map_err(|e| BadInput(format!("{e:#}")))?;
    }
    for r in all {
        for job in runner::execute::selected_jobs(r, opts).unwrap_or_default() {
            let (section, g) = job.sub_batches(r);
            if g.is_multiple_of(ranks) || (g == 1 && one == OneSlice::RunAlone) {
                continue;
            }
            return Err(BadInput(format!(
                "{} (experiment {}): {section}.sub_batches is {g}, which {ranks} ranks do not divide ({flag} {ranks}): each rank runs sub_batches / ranks of every batch; use {flag} dividing {g}, set {section}.sub_batches to a multiple of {ranks}{}",
                r.source.display(),
                r.experiment.name,
                match one {
                    OneSlice::Refuse => ", or run the other stages alone with --job",
                    OneSlice::RunAlone => "",
                }
            ))
            .into());
        }
    }
    Ok(())
}

/// The suite's experiments, every one validated (bad input if any is bad or there are none).
pub fn load_suite(suite: &[PathBuf], tier: Tier) -> Result<Vec<Resolved>> {
    let files = files_of(suite)?;
    if files.is_empty() {
        let names: Vec<String> = suite.iter().map(|p| p.display().to_string()).collect();
        return Err(BadInput(format!("no experiment files found in {}", names.join(", "))).into());
    }
    load_all(&files, tier, &[])
}

/// `unas reproduce`: the whole suite at a tier; every experiment is validated, and every dataset it
/// needs found, before any runs.
pub fn reproduce(
    suite: &[PathBuf],
    tier: Tier,
    data: Option<&Path>,
    root: &ResultsRoot,
    device: Option<DeviceChoice>,
    how: &RunHow,
) -> Result<ExitCode> {
    let mut all = load_suite(suite, tier)?;
    if let Some(dir) = data {
        all = with_data_root(&all, tier, dir)?;
    }
    check_data(&all, tier)?;
    check_ranks(
        &all,
        how.ranks,
        &how.opts,
        "--ranks-per-run",
        OneSlice::RunAlone,
    )?;
    run_resolved(&all, root, device, how)
}

/// The experiments again with `dataset.root` at `dir` (CIFAR) or `dir/imagenet` (ImageNet), as a
/// `--set` would put it (so the ids say where the data came from).
fn with_data_root(all: &[Resolved], tier: Tier, dir: &Path) -> Result<Vec<Resolved>> {
    use crate::config::DatasetName;
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    for r in all {
        let at = match r.experiment.dataset.name {
            DatasetName::Synthetic => continue,
            DatasetName::Imagenet => dir.join("imagenet"),
            DatasetName::Cifar10 | DatasetName::Cifar100 => dir.to_path_buf(),
        };
        let set = format!(
            "dataset.root={}",
            serde_json::to_string(&at.display().to_string())?
        );
        if !files.iter().any(|(f, _)| *f == r.source) {
            files.push((r.source.clone(), set));
        }
    }
    let mut out: Vec<Resolved> = all
        .iter()
        .filter(|r| !files.iter().any(|(f, _)| *f == r.source))
        .cloned()
        .collect();
    for (f, set) in files {
        out.extend(load_all(&[f], tier, &[set])?);
    }
    Ok(out)
}

/// Stops before any work when a dataset the suite needs is absent: what is missing, the
/// `unas data fetch` command or the ImageNet layout that fixes it.
fn check_data(all: &[Resolved], tier: Tier) -> Result<()> {
    let mut missing: Vec<crate::data::presence::Missing> = Vec::new();
    for r in all {
        if let Some(m) = crate::data::presence::missing(&r.experiment.dataset) {
            if !missing
                .iter()
                .any(|x| x.dataset == m.dataset && x.root == m.root)
            {
                missing.push(m);
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let mut msg = format!(
        "the suite at tier {tier} needs {} dataset(s) that are not here; nothing was run:",
        missing.len()
    );
    for m in &missing {
        let name = serde_json::to_value(m.dataset).ok();
        let name = name.as_ref().and_then(|v| v.as_str()).unwrap_or("?");
        msg.push_str(&format!(
            "\n  {name} in {}: {}\n    {}",
            m.root.display(),
            m.what,
            m.fix.replace('\n', "\n    ")
        ));
    }
    msg.push_str("\n(point --data DIR at the folder that holds them: CIFAR in DIR/, ImageNet in DIR/imagenet/)");
    Err(BadInput(msg).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(end: JobEnd) -> JobReport {
        JobReport {
            experiment: "e".into(),
            stage: "search",
            seed: 0,
            run_id: "0123456789abcdef".into(),
            dir: None,
            end,
            wall_s: 0.0,
        }
    }

    #[test]
    fn the_closing_line_names_each_way_a_job_did_not_finish_and_only_failures_fail() {
        let root = ResultsRoot(PathBuf::from("/results"));
        assert!(closing_line(&[report(JobEnd::Done { skipped: false })], &root).is_none());
        let (line, failed) =
            closing_line(&[report(JobEnd::Taken("held by 7".into()))], &root).unwrap();
        assert!(
            !failed && line.contains("not failed") && !line.contains("status.json"),
            "{line}"
        );
        let (line, failed) = closing_line(
            &[
                report(JobEnd::Unrecorded(
                    "creating run folder /results/x: Not a directory".into(),
                )),
                report(JobEnd::Failed("diverged".into())),
            ],
            &root,
        )
        .unwrap();
        assert!(failed);
        assert!(
            line.contains("1 could not start") && line.contains("Not a directory"),
            "{line}"
        );
        assert!(line.contains("1 failed: each one's status.json"), "{line}");
    }
}

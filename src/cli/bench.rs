//! `unas bench …`: each benchmark prints its own table.

use super::args::{self, BenchSpace, BenchWhat};

/// `unas bench …`: each prints its own table.
pub fn bench(what: BenchWhat, device: Option<crate::config::DeviceChoice>) -> anyhow::Result<()> {
    match what {
        BenchWhat::Data => crate::data::bench::run()?,
        BenchWhat::Search { file, tier, sets } => {
            crate::bench::run(&file, tier, &sets, device, crate::bench::Baseline::Warmup)?
        }
        BenchWhat::Train { file, tier, sets } => {
            crate::bench::run(&file, tier, &sets, device, crate::bench::Baseline::BareStep)?
        }
        BenchWhat::Step(a) => crate::bench::step::run(&step_options(a), device)?,
        BenchWhat::Space {
            space: BenchSpace::Darts,
            batch,
            steps,
            channels,
            layers,
        } => {
            let device = crate::device::resolve(device.unwrap_or_default())?;
            crate::nas::space::darts::bench::run(&crate::nas::space::darts::bench::BenchOptions {
                batch,
                steps,
                channels,
                layers,
                device,
            })?
        }
    }
    Ok(())
}

/// The step benchmark's flags as the bench module takes them.
fn step_options(a: args::StepArgs) -> crate::bench::step::StepOptions {
    use crate::bench::step::{StepOptions, StepWhat};
    StepOptions {
        what: match a.what {
            args::StepKind::Search => StepWhat::Search,
            args::StepKind::Train => StepWhat::Train,
        },
        layers: a.layers,
        channels: a.channels,
        batch: a.batch,
        estimator: a.estimator,
        objective: a.objective,
        genotype: a.genotype,
        aux_weight: a.aux_weight,
        drop_path: a.drop_path,
        warmup_steps: a.warmup_steps,
        steps: a.steps,
        threads: 0, // set once for the process from the global --threads
        seed: a.seed,
        precision: a.precision,
        batched_passes: a.batched_passes,
        cuda_graphs: a.cuda_graphs,
        json: a.json,
    }
}

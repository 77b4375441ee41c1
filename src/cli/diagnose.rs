//! `unas diagnose …`: the estimators on enumerable problems, the devices, the parity checks.

use std::process::ExitCode;

use super::args::DiagnoseCommand;
use super::exit::EXIT_OK;

/// `unas diagnose parity`: exit 0 when every CPU-vs-device check passes, 1 otherwise.
fn parity(choice: crate::config::DeviceChoice, json: bool) -> anyhow::Result<ExitCode> {
    let dev = crate::device::resolve(choice)?;
    let r = crate::nas::space::darts::parity::run(dev)?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        let mut t = crate::text_table::TextTable::new(&["check", "max rel. diff", "tolerance", ""]);
        for c in &r.checks {
            t.push(vec![
                c.what.clone(),
                format!("{:.2e}", c.rel_diff),
                format!("{:.0e}", c.tolerance),
                if c.pass { "ok" } else { "FAIL" }.into(),
            ]);
        }
        print!("{}", t.render());
    }
    Ok(ExitCode::from(if r.all_pass() { EXIT_OK } else { 1 }))
}

/// `unas diagnose parity-torch`: one table row per compared tensor (or JSON); exit 1 when one is
/// beyond its bound.
fn torch_parity(o: &crate::bench::torch_parity::TorchParityOptions) -> anyhow::Result<ExitCode> {
    let r = crate::bench::torch_parity::run(o)?;
    if o.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        let mut t = crate::text_table::TextTable::new(&[
            "tensor",
            "quantity",
            "max |Δ|",
            "max |ours|",
            "|Δ|/bound",
            "",
        ]);
        for c in &r.compared {
            t.push(vec![
                c.key.clone(),
                format!("{:?}", c.quantity),
                format!("{:.2e}", c.max_abs_diff),
                format!("{:.2e}", c.max_abs),
                format!("{:.3}", c.ratio_to_bound),
                if c.pass { "ok" } else { "FAIL" }.into(),
            ]);
        }
        print!("{}", t.render());
        for l in &r.initial_loss {
            println!(
                "initial loss of a fresh {}: ours {:.4}, the reference's own fresh networks {:.4} ± {:.4} (n = {}): {}",
                l.network,
                l.ours,
                l.reference_mean,
                l.reference_sd,
                l.reference_n,
                if l.pass { "within sampling error" } else { "FAIL" }
            );
        }
        let failed = r.compared.iter().filter(|c| !c.pass).count();
        let worst = r
            .compared
            .iter()
            .map(|c| c.ratio_to_bound)
            .fold(0.0, f64::max);
        println!(
            "{} tensors compared, {failed} beyond their bound (worst |Δ|/bound {worst:.3}); forward ε = {:.1e} (search, depth {}), {:.1e} (training, depth {}); not in the reference: {}",
            r.compared.len(),
            r.eps_forward_search,
            r.search_depth,
            r.eps_forward_train,
            r.train_depth,
            r.only_ours.join(", ")
        );
    }
    Ok(ExitCode::from(if r.pass { EXIT_OK } else { 1 }))
}

/// `unas diagnose …`: the estimators on enumerable problems, the devices, the CPU-vs-device parity.
pub fn diagnose(
    what: DiagnoseCommand,
    device: Option<crate::config::DeviceChoice>,
) -> anyhow::Result<ExitCode> {
    let text = match what {
        DiagnoseCommand::Estimator { estimator, problem } => {
            crate::nas::diagnose::estimator(estimator, &problem)?
        }
        DiagnoseCommand::Estimators { all, only, problem } => {
            let chosen: Vec<_> = if all {
                crate::config::Estimator::ALL.to_vec()
            } else {
                only
            };
            crate::nas::diagnose::estimators(&chosen, &problem)?
        }
        DiagnoseCommand::Device => {
            let mut facts = crate::device::facts();
            facts["nccl"] = crate::dist::nccl_facts();
            serde_json::to_string_pretty(&facts)?
        }
        DiagnoseCommand::Parity { json } => {
            return parity(device.unwrap_or(crate::config::DeviceChoice::Auto), json);
        }
        DiagnoseCommand::ParityTorch(o) => return torch_parity(&o),
        DiagnoseCommand::CudaGraphs {
            layers,
            channels,
            batch,
            steps,
            json,
        } => {
            let a = crate::bench::step::StepOptions {
                what: crate::bench::step::StepWhat::Train,
                layers,
                channels,
                batch,
                estimator: crate::config::Estimator::Rebar,
                objective: "gengap".into(),
                genotype: "UNAS_CIFAR10".into(),
                aux_weight: 0.4,
                drop_path: 0.2,
                warmup_steps: 0,
                steps,
                threads: 0,
                seed: 0,
                precision: crate::config::Precision::Fp32,
                batched_passes: false,
                cuda_graphs: true,
                json,
            };
            let pass = crate::bench::step::graph_parity(&a, device)?;
            return Ok(ExitCode::from(if pass { EXIT_OK } else { 1 }));
        }
    };
    println!("{text}");
    Ok(ExitCode::from(EXIT_OK))
}

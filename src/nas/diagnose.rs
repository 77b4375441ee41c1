//! `unas diagnose estimator` and `unas diagnose estimators --all`: run the gradient estimators on the
//! enumerable one-selector problem f(b) = (Σ_k b_k v_k − t)² and compare their Monte-Carlo mean and
//! spread with the exact gradient of E_q[f(b)]. Also the toy-problem machinery the estimator tests use.
//!
//! Per-sample gradients come from one backward pass: the logits are expanded to a per-example leaf
//! [S, N, K], so example n's estimate is N times the gradient of its slice.

use std::fmt::Write as _;

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;
use tch::{Device, Kind, Tensor};

use super::arch::SampleKind;
use super::distribution::Categoricals;
use super::estimator::EstimatorState;
use super::relax_cv::RelaxControlVariate;
use crate::config::estimator::Carried;
use crate::config::Estimator;
use crate::results::diverged::Finite;

/// f(x) = (Σ_groups Σ_s Σ_k x[s,n,k]·v[s,k] − t)² per example; x one-hot or relaxed, [S, N, K] per group.
#[derive(Debug)]
pub struct ToyProblem {
    /// v per group, [S, K].
    pub values: Vec<Tensor>,
    pub target: f64,
}

impl ToyProblem {
    /// v·x per example [N].
    pub fn linear(&self, xs: &[Tensor]) -> Tensor {
        xs.iter()
            .zip(&self.values)
            .map(|(x, v)| (x * v.unsqueeze(1)).sum_dim_intlist(&[0, 2][..], false, x.kind()))
            .reduce(|a, b| a + b)
            .expect("at least one group")
    }

    pub fn f(&self, xs: &[Tensor]) -> Tensor {
        (self.linear(xs) - self.target).square() // f = (v·x − t)²
    }
}

/// The exact gradient of E_q[g(b)] w.r.t. each group's logits ([S, K]), by enumerating every joint
/// one-hot b (Π K over all selectors; keep it small). `g` maps per-group [S, M, K] one-hots to [M].
pub fn exact_gradient(dist: &Categoricals, g: impl Fn(&[Tensor]) -> Tensor) -> Vec<Tensor> {
    let shapes: Vec<(i64, i64)> = dist
        .groups
        .iter()
        .map(|gr| (gr.logits.size()[0], gr.logits.size()[1]))
        .collect();
    let radices: Vec<i64> = shapes
        .iter()
        .flat_map(|&(s, k)| std::iter::repeat_n(k, s as usize))
        .collect();
    let m: i64 = radices.iter().product();
    assert!(
        m <= 1_000_000,
        "{m} joint outcomes are too many to enumerate"
    );
    let kind = dist.groups[0].logits.kind();
    // digit[sel][j]: the choice of selector `sel` in outcome j (mixed radix)
    let mut digits = vec![vec![0i64; m as usize]; radices.len()];
    for j in 0..m {
        let mut r = j;
        for (sel, &k) in radices.iter().enumerate() {
            digits[sel][j as usize] = r % k;
            r /= k;
        }
    }
    let mut sel = 0;
    let onehots: Vec<Tensor> = shapes
        .iter()
        .map(|&(s, k)| {
            let rows: Vec<Tensor> = (0..s)
                .map(|_| {
                    let t = Tensor::from_slice(&digits[sel]).one_hot(k).to_kind(kind);
                    sel += 1;
                    t
                })
                .collect();
            Tensor::stack(&rows, 0) // [S, M, K]
        })
        .collect();
    let values = tch::no_grad(|| g(&onehots));
    let expectation = (dist.log_prob(&onehots).exp() * values).sum(kind); // Σ_b q(b)·g(b)
    Tensor::run_backward(&[&expectation], &dist.parameters(), false, false)
}

/// Mean, standard error and total variance of per-sample gradient estimates.
#[derive(Clone, Debug, Serialize)]
pub struct GradStats {
    pub mean: Vec<f64>,
    pub stderr: Vec<f64>,
    /// Σ_k Var(ĝ_k) of one sample.
    pub variance: f64,
}

/// Per-sample gradients from the gradients of per-example logit leaves ([S, N, K] per group, filled
/// by a backward of a mean over N): ĝ_n = N·grad[:, n, :], flattened per example → statistics.
pub fn per_sample_stats(per_example_leaves: &[Tensor]) -> GradStats {
    let grads: Vec<Tensor> = per_example_leaves.iter().map(|l| l.grad()).collect();
    let n = grads[0].size()[1];
    let g = super::distribution::flatten_per_example(&grads).to_kind(Kind::Double) * n as f64; // [N, D]
    let mean = g.mean_dim(&[0][..], false, Kind::Double);
    let var = g.var_dim(&[0][..], true, false);
    let stderr = (&var / n as f64).sqrt();
    GradStats {
        mean: Vec::<f64>::try_from(&mean).expect("double"),
        stderr: Vec::<f64>::try_from(&stderr).expect("double"),
        variance: var.sum(Kind::Double).double_value(&[]),
    }
}

/// A distribution whose groups are per-example copies ([S, N, K] leaves) of `logits` ([S, K]).
pub fn per_example_copy(logits: &[Tensor], n: i64, eps: f64) -> Categoricals {
    Categoricals::from_logits(
        logits
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let s = l.size();
                let leaf = l
                    .detach()
                    .unsqueeze(1)
                    .expand([s[0], n, s[1]], false)
                    .contiguous()
                    .set_requires_grad(true);
                (format!("g{i}"), leaf)
            })
            .collect(),
        eps,
    )
}

/// The one-selector problem of `unas diagnose estimator`.
#[derive(Args, Clone, Debug)]
pub struct ProblemArgs {
    /// Logits a_k of the selector, comma separated (K ≥ 2).
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        default_value = "0.5,-0.3,0.1,0"
    )]
    pub logits: Vec<f64>,
    /// Values v_k in f(b) = (Σ_k b_k v_k − t)², comma separated, one per logit.
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        default_value = "1,2,3,4"
    )]
    pub values: Vec<f64>,
    /// Target t.
    #[arg(long, allow_hyphen_values = true, default_value_t = 2.5)]
    pub target: f64,
    /// Gumbel-softmax temperature τ.
    #[arg(long, default_value_t = 0.4)]
    pub temperature: f64,
    /// Softening ε.
    #[arg(long, default_value_t = 0.0)]
    pub eps: f64,
    /// Monte-Carlo samples, drawn in one batch.
    #[arg(long, default_value_t = 20_000)]
    pub samples: i64,
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
    /// RELAX: Adam steps (of `--relax-batch` samples each) training φ before measuring.
    #[arg(long, default_value_t = 300)]
    pub relax_warmup: u32,
    #[arg(long, default_value_t = 256)]
    pub relax_batch: i64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The `--json` object of `unas diagnose estimator` (exactly these keys).
#[derive(Clone, Debug, Serialize)]
pub struct EstimatorReport {
    pub estimator: &'static str,
    pub samples: i64,
    pub grad_mean: Vec<f64>,
    pub grad_stderr: Vec<f64>,
    pub exact: Vec<f64>,
}

/// One row of `unas diagnose estimators`.
#[derive(Clone, Debug, Serialize)]
pub struct ComparisonRow {
    #[serde(flatten)]
    pub report: EstimatorReport,
    /// Σ_k Var(ĝ_k) of a single-sample estimate.
    pub variance: f64,
    /// max_k |mean_k − exact_k| / stderr_k (∞-free: 0 when stderr is 0 and the mean is exact).
    pub max_z: f64,
    /// max_k |mean_k − exact_k|.
    pub max_bias: f64,
}

impl ProblemArgs {
    fn check(&self) -> anyhow::Result<()> {
        if self.logits.len() < 2 {
            bail!(
                "--logits needs at least 2 entries (K ≥ 2), got {}",
                self.logits.len()
            );
        }
        if self.values.len() != self.logits.len() {
            bail!(
                "--values has {} entries but --logits has {}: give one value per logit",
                self.values.len(),
                self.logits.len()
            );
        }
        if self.temperature <= 0.0 {
            bail!("--temperature must be > 0, got {}", self.temperature);
        }
        if self.eps < 0.0 {
            bail!("--eps must be ≥ 0, got {}", self.eps);
        }
        if self.samples < 2 {
            bail!("--samples must be at least 2 to estimate a standard error");
        }
        Ok(())
    }

    fn logits(&self) -> Tensor {
        Tensor::from_slice(&self.logits)
            .to_kind(Kind::Double)
            .reshape([1, -1])
    }

    fn problem(&self) -> ToyProblem {
        ToyProblem {
            values: vec![Tensor::from_slice(&self.values)
                .to_kind(Kind::Double)
                .reshape([1, -1])],
            target: self.target,
        }
    }
}

/// Run one estimator on the problem: Monte-Carlo statistics over `samples` per-example estimates and
/// the exact gradient. For `relax`, φ is first trained for `relax_warmup` steps; for `reinforce`, the
/// baseline is warmed by one batch.
pub fn run_estimator(
    estimator: Estimator,
    p: &ProblemArgs,
) -> anyhow::Result<(EstimatorReport, GradStats)> {
    p.check()?;
    tch::manual_seed(p.seed);
    let problem = p.problem();
    let logits = p.logits();
    let shared = Categoricals::from_logits(
        vec![("s".into(), logits.shallow_clone().set_requires_grad(true))],
        p.eps,
    );
    let exact = exact_gradient(&shared, |b| problem.f(b));
    let mut f = |xs: &[Tensor], _: SampleKind| problem.f(xs);
    let mut state = EstimatorState::new(estimator, &shared);
    if let Some(cv) = state.relax.as_mut() {
        *cv = RelaxControlVariate::new(p.logits.len() as i64, 32, 1e-2, Kind::Double, Device::Cpu);
    }
    let warm_steps = match estimator.carried() {
        Carried::ControlVariateNet => p.relax_warmup,
        Carried::Baseline => 1, // β's first value
        Carried::Nothing => 0,
    };
    for step in 0..warm_steps {
        let dist = per_example_copy(std::slice::from_ref(&logits), p.relax_batch, p.eps);
        let draw = dist.sample(p.relax_batch, p.temperature, state.sampler());
        state
            .estimate(&dist, &draw, &mut f, &mut Finite::eager(step as u64))
            .context("warming up the estimator")?;
    }
    let dist = per_example_copy(std::slice::from_ref(&logits), p.samples, p.eps);
    let draw = dist.sample(p.samples, p.temperature, state.sampler());
    let est = state.estimate(&dist, &draw, &mut f, &mut Finite::eager(warm_steps as u64))?;
    est.surrogate.backward();
    let stats = per_sample_stats(&dist.parameters());
    let report = EstimatorReport {
        estimator: estimator.name(),
        samples: p.samples,
        grad_mean: stats.mean.clone(),
        grad_stderr: stats.stderr.clone(),
        exact: Vec::<f64>::try_from(exact[0].reshape([-1])).expect("double"),
    };
    Ok((report, stats))
}

fn comparison_row(report: EstimatorReport, stats: &GradStats) -> ComparisonRow {
    let mut max_z: f64 = 0.0;
    let mut max_bias: f64 = 0.0;
    for ((m, s), e) in report
        .grad_mean
        .iter()
        .zip(&report.grad_stderr)
        .zip(&report.exact)
    {
        let bias = (m - e).abs();
        max_bias = max_bias.max(bias);
        if *s > 0.0 {
            max_z = max_z.max(bias / s);
        } else if bias > 1e-12 {
            max_z = f64::INFINITY;
        }
    }
    ComparisonRow {
        report,
        variance: stats.variance,
        max_z,
        max_bias,
    }
}

fn fmt_vec(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x:+.5}")).collect();
    format!("[{}]", parts.join(", "))
}

/// `unas diagnose estimator`: one estimator's gradient against the exact one; the text to print.
pub fn estimator(estimator: Estimator, problem: &ProblemArgs) -> anyhow::Result<String> {
    let (report, stats) = run_estimator(estimator, problem)?;
    if problem.json {
        return Ok(serde_json::to_string(&report)?);
    }
    let mut out = String::new();
    writeln!(
        out,
        "estimator {}  samples {}  τ {}  ε {}",
        report.estimator, report.samples, problem.temperature, problem.eps
    )?;
    writeln!(
        out,
        "{:>3}  {:>11}  {:>11}  {:>11}  {:>7}",
        "k", "grad_mean", "stderr", "exact", "z"
    )?;
    for k in 0..report.exact.len() {
        let (m, s, e) = (report.grad_mean[k], report.grad_stderr[k], report.exact[k]);
        let z = if s > 0.0 { (m - e) / s } else { 0.0 };
        writeln!(out, "{k:>3}  {m:>+11.5}  {s:>11.5}  {e:>+11.5}  {z:>+7.2}")?;
    }
    write!(
        out,
        "single-sample variance Σ_k Var(ĝ_k) = {:.5}",
        stats.variance
    )?;
    Ok(out)
}

/// `unas diagnose estimators`: bias and variance of `chosen` on one problem; the text to print.
pub fn estimators(chosen: &[Estimator], problem: &ProblemArgs) -> anyhow::Result<String> {
    if chosen.is_empty() {
        bail!("say which estimators to compare: --all, or --only rebar,relax,...");
    }
    let mut rows = Vec::new();
    for &e in chosen {
        let (report, stats) =
            run_estimator(e, problem).with_context(|| format!("running estimator {}", e.name()))?;
        rows.push(comparison_row(report, &stats));
    }
    if problem.json {
        return Ok(serde_json::to_string(&rows)?);
    }
    let mut out = String::new();
    writeln!(
        out,
        "f(b) = (v·b − t)², logits {:?}, v {:?}, t {}, τ {}, ε {}, {} samples, seed {}",
        problem.logits,
        problem.values,
        problem.target,
        problem.temperature,
        problem.eps,
        problem.samples,
        problem.seed
    )?;
    writeln!(
        out,
        "{:<10} {:>12} {:>10} {:>8}  grad_mean",
        "estimator", "variance", "max|bias|", "max z"
    )?;
    for r in &rows {
        writeln!(
            out,
            "{:<10} {:>12.5} {:>10.5} {:>8.2}  {}",
            r.report.estimator,
            r.variance,
            r.max_bias,
            r.max_z,
            fmt_vec(&r.report.grad_mean)
        )?;
    }
    write!(
        out,
        "{:<10} {:>12} {:>10} {:>8}  {}",
        "exact",
        "",
        "",
        "",
        fmt_vec(&rows[0].report.exact)
    )?;
    Ok(out)
}

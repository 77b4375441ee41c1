//! `unas diagnose parity-torch` against the PyTorch reference (bench/reference.py), in both spaces
//! (DARTS; ProxylessNAS with its latency term), for each estimator with an architecture step (all
//! but random_ws): one warm-up step, one search step (per-example, gen-gap + pair penalty) and
//! one training step from the same state, every number within its bound. Needs the full torch wheel
//! (`make bench-venv`, 4.6 GB installed), so it is `#[ignore]`d in `make test` and run by `make parity`.

mod common;

use std::path::Path;

const PYTHON: &str = ".deps/bench-venv/bin/python";

fn parity(space: &str, estimator: &str) -> serde_json::Value {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(PYTHON);
    assert!(
        python.is_file(),
        "{} is missing: `make bench-venv` installs the full torch wheel (or run `make parity`)",
        python.display()
    );
    let results = tempfile::tempdir().unwrap();
    let o = common::output(common::unas(
        results.path(),
        &[
            "diagnose",
            "parity-torch",
            "--space",
            space,
            "--estimator",
            estimator,
            "--json",
        ],
    ));
    let text = String::from_utf8_lossy(&o.stdout);
    let line = text.lines().last().unwrap_or_default();
    let doc: serde_json::Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{e}: no JSON report\n{}", common::show(&o)));
    let failed: Vec<&serde_json::Value> = doc["compared"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["pass"] != true)
        .collect();
    assert!(
        failed.is_empty(),
        "{space}/{estimator}: beyond the bound: {failed:#?}"
    );
    // a fresh supernet's and evaluation network's initial loss among the reference's own fresh ones
    let fresh = doc["initial_loss"].as_array().unwrap();
    assert_eq!(fresh.len(), 2, "{doc}");
    assert!(
        fresh.iter().all(|l| l["pass"] == true),
        "{space}/{estimator}: {fresh:#?}"
    );
    assert!(o.status.success(), "{}", common::show(&o));
    // the figures `make parity` reports (README's table)
    let worst = doc["compared"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["ratio_to_bound"].as_f64().unwrap())
        .fold(0.0, f64::max);
    eprintln!(
        "{space}/{estimator}: {} numbers, worst |Δ|/bound {worst:.3}; initial losses {}",
        doc["compared"].as_array().unwrap().len(),
        fresh
            .iter()
            .map(|l| format!(
                "{} {:.3} vs {:.3} ± {:.3}",
                l["network"].as_str().unwrap(),
                l["ours"].as_f64().unwrap(),
                l["reference_mean"].as_f64().unwrap(),
                l["reference_sd"].as_f64().unwrap()
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    doc
}

/// Which of f(b), f(ζ) each estimator evaluates (and logs), and whether it has a relaxed or dense
/// pass (the gap and the pair penalty are logged from it): (estimator, f(b), f(ζ), gap/penalty).
const ESTIMATORS: [(&str, bool, bool, bool); 6] = [
    ("gsm", false, true, true),
    // the straight-through pass's value is f(b): logged as f_discrete
    ("st_gsm", true, false, true),
    ("darts", false, true, true),
    ("reinforce", true, false, false),
    ("rebar", true, true, true),
    ("relax", true, true, true),
];

#[test]
#[ignore = "needs the full torch wheel: make parity"]
fn every_number_of_the_three_steps_matches_the_pytorch_reference_in_both_spaces() {
    for (space, (estimator, f_b, f_zeta, relaxed_pass)) in ["darts", "proxyless"]
        .into_iter()
        .flat_map(|space| ESTIMATORS.map(|e| (space, e)))
    {
        let doc = parity(space, estimator);
        let compared = doc["compared"].as_array().unwrap();
        // every kind of number was compared, in all three steps
        for q in [
            "forward",
            "weight_grad",
            "arch_grad",
            "adam_update",
            "sgd_update",
        ] {
            assert!(
                compared.iter().any(|c| c["quantity"] == q),
                "{space}/{estimator}: nothing of kind {q} compared"
            );
        }
        for prefix in ["warm/", "search/", "train/"] {
            assert!(
                compared
                    .iter()
                    .filter(|c| c["key"].as_str().unwrap().starts_with(prefix))
                    .count()
                    > 100,
                "{space}/{estimator}: too few numbers of the {prefix} step"
            );
        }
        let has = |key: &str| compared.iter().any(|c| c["key"] == key);
        assert_eq!(
            has("search/term/gen_gap"),
            relaxed_pass,
            "{space}/{estimator}"
        );
        // the pair penalty is the DARTS space's; the latency term (through the surrogate) is the
        // ProxylessNAS space's, with the score-function estimators
        let darts = space == "darts";
        assert_eq!(
            has("search/term/pair_penalty"),
            darts && relaxed_pass,
            "{space}/{estimator}"
        );
        let score_function = ["reinforce", "rebar", "relax"].contains(&estimator);
        assert_eq!(
            has("search/term/latency_ms"),
            !darts && score_function,
            "{space}/{estimator}: L(b')"
        );
        assert_eq!(
            has("search/term/f_discrete"),
            f_b,
            "{space}/{estimator}: f(b)"
        );
        assert_eq!(
            has("search/term/f_relaxed"),
            f_zeta,
            "{space}/{estimator}: f(ζ)"
        );
        // RELAX's control variate: its gradient and its Adam step, every parameter
        for p in ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"] {
            for what in ["grad", "w"] {
                let key = format!("search/relax/{what}/{p}");
                assert_eq!(
                    has(&key),
                    estimator == "relax",
                    "{space}/{estimator}: {key}"
                );
            }
        }
    }
}

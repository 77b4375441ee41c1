//! `unas diagnose parity-torch` against the PyTorch reference (bench/reference.py), for each of the
//! reference's estimators: one warm-up step, one search step (per-example, gen-gap + pair penalty) and
//! one training step from the same state, every number within its bound. Needs the full torch wheel
//! (`make bench-venv`, 4.6 GB installed), so it is `#[ignore]`d in `make test` and run by `make parity`.

mod common;

use std::path::Path;

const PYTHON: &str = ".deps/bench-venv/bin/python";

fn parity(estimator: &str) -> serde_json::Value {
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
        "{estimator}: beyond the bound: {failed:#?}"
    );
    // a fresh supernet's and evaluation network's initial loss among the reference's own fresh ones
    let fresh = doc["initial_loss"].as_array().unwrap();
    assert_eq!(fresh.len(), 2, "{doc}");
    assert!(
        fresh.iter().all(|l| l["pass"] == true),
        "{estimator}: {fresh:#?}"
    );
    assert!(o.status.success(), "{}", common::show(&o));
    doc
}

#[test]
#[ignore = "needs the full torch wheel: make parity"]
fn every_number_of_the_three_steps_matches_the_pytorch_reference() {
    for estimator in ["rebar", "gsm", "reinforce"] {
        let doc = parity(estimator);
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
                "{estimator}: nothing of kind {q} compared"
            );
        }
        for prefix in ["warm/", "search/", "train/"] {
            assert!(
                compared
                    .iter()
                    .filter(|c| c["key"].as_str().unwrap().starts_with(prefix))
                    .count()
                    > 100,
                "{estimator}: too few numbers of the {prefix} step"
            );
        }
        // the relaxed pass's terms (REINFORCE has no relaxed pass), f(b)'s (GSM evaluates no b)
        for key in [
            "search/term/f_relaxed",
            "search/term/gen_gap",
            "search/term/pair_penalty",
        ] {
            assert_eq!(
                compared.iter().any(|c| c["key"] == key),
                estimator != "reinforce",
                "{estimator}: {key}"
            );
        }
        assert_eq!(
            compared
                .iter()
                .any(|c| c["key"] == "search/term/f_discrete"),
            estimator != "gsm",
            "{estimator}: f(b)"
        );
    }
}

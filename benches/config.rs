//! `cargo bench --bench config`: cost of resolving an experiment (read, parse with positions, tier,
//! validate, hash), quoted as a ratio against reading and parsing the same files as plain JSON values
//! (serde-saphyr → serde_json::Value) measured in the same run. No absolute timing is asserted anywhere.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let files = unas::cli::experiment_files(&[root]).expect("experiments");
    let texts: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let reps = 30;
    let mut base = Vec::new();
    let mut full = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        for text in &texts {
            black_box(serde_saphyr::from_str::<serde_json::Value>(text).unwrap());
        }
        base.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for f in &files {
            black_box(unas::config::load(f, unas::config::Tier::Smoke, &[]).unwrap());
        }
        full.push(t.elapsed().as_secs_f64());
    }
    let (b, f) = (median(base), median(full));
    println!(
        "config resolve: {} files, median of {reps} repeats",
        files.len()
    );
    println!(
        "  baseline (YAML → JSON value):            {:.3} ms per file",
        b * 1e3 / files.len() as f64
    );
    println!(
        "  full resolve (parse, tier, validate, id): {:.3} ms per file",
        f * 1e3 / files.len() as f64
    );
    println!("  ratio full / baseline:                    {:.2}×", f / b);
}

//! The sweep tables: every variant of one `sweep:` (the runs whose `sweep_of` names the same
//! experiment, at one tier) in one table `sweep-<experiment>-<tier>`, a row per grid point with its
//! swept values, the final search-time validation accuracy and the test error of the trained cell.
//! The figure of the same name plots them over the swept value ([`crate::report::figures`]).

use serde_json::Value;

use super::super::evidence::Metric;
use super::super::scan::Group;
use super::super::table::{Align, ReportTable};
use super::{group_notes, Ctx};

/// One sweep at one tier: its keys and, per grid point, the swept values and the variant's group.
pub(crate) struct Sweep<'a> {
    pub of: String,
    pub tier: String,
    pub keys: Vec<String>,
    /// Sorted by the values, in key order.
    pub points: Vec<(Vec<Value>, &'a Group)>,
}

impl Sweep<'_> {
    /// The name of its table and figure.
    pub(crate) fn name(&self) -> String {
        format!("sweep-{}-{}", self.of, self.tier)
    }
}

/// The value at a dotted field path of a run's resolved config (`Null` where it has none).
pub(crate) fn value_at(config_text: &str, key: &str) -> Value {
    let root: Value = serde_saphyr::from_str(config_text).unwrap_or(Value::Null);
    key.split('.')
        .try_fold(&root, |v, seg| v.get(seg))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Numbers by value, anything else by its text.
fn order(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// Every sweep the scanned runs belong to, by (experiment, tier).
pub(crate) fn sweeps<'a>(ctx: &Ctx<'a>) -> Vec<Sweep<'a>> {
    let mut out: Vec<Sweep<'a>> = Vec::new();
    for g in ctx.groups {
        let (Some(of), Some(grid)) = (&g.config.sweep_of, &g.config.sweep) else {
            continue;
        };
        let keys: Vec<String> = grid.keys().cloned().collect();
        let values: Vec<Value> = keys.iter().map(|k| value_at(&g.config_text, k)).collect();
        match out.iter_mut().find(|s| &s.of == of && s.tier == g.tier) {
            Some(s) => s.points.push((values, g)),
            None => out.push(Sweep {
                of: of.clone(),
                tier: g.tier.clone(),
                keys,
                points: vec![(values, g)],
            }),
        }
    }
    for s in &mut out {
        s.points.sort_by(|(a, _), (b, _)| {
            a.iter()
                .zip(b)
                .map(|(x, y)| order(x, y))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    }
    out
}

/// The table of one sweep.
pub(crate) fn table(ctx: &Ctx, sw: &Sweep) -> ReportTable {
    let mut t = ReportTable::new(
        &sw.name(),
        &format!("Sweep: {}", sw.of),
        format!(
            "Every variant of the sweep of {} over {} ({} tier): final search-time validation accuracy and test error of the searched cell trained from scratch, mean ± std over seeds",
            sw.of,
            sw.keys.join(" × "),
            sw.tier
        ),
    );
    for k in &sw.keys {
        t.col(k, Align::Right);
    }
    for (label, align) in [
        ("experiment", Align::Left),
        ("search val. acc. %", Align::Right),
        ("test error %", Align::Right),
    ] {
        t.col(label, align);
    }
    for (values, g) in &sw.points {
        let mut row: Vec<String> = values.iter().map(show).collect();
        row.push(g.label.clone());
        row.push(ctx.cell(g, Metric::SearchValAcc, 2));
        row.push(ctx.cell(g, Metric::TestErr, 2));
        t.push(row);
    }
    let groups: Vec<&Group> = sw.points.iter().map(|(_, g)| *g).collect();
    group_notes(&mut t, ctx, &groups);
    let smoke = groups.iter().any(|g| g.is_smoke());
    t.with_smoke_caption(smoke)
}

/// A swept value as the table prints it.
pub(crate) fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

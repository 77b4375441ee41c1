//! The published numbers of `experiments/reference.yaml` for one table: they fill only the columns
//! labelled `(published)`, each with its source in a footnote, and never a column of ours.

use crate::config::reference::{Entry, Reference, Stat};

use super::super::cells;
use super::super::table::ReportTable;

pub(crate) struct Published<'a> {
    entries: Vec<&'a Entry>,
}

impl<'a> Published<'a> {
    pub(crate) fn for_table(reference: Option<&'a Reference>, table: &str) -> Published<'a> {
        Published {
            entries: reference
                .map(|r| r.entries.iter().filter(|e| e.table == table).collect())
                .unwrap_or_default(),
        }
    }

    pub(crate) fn has(&self, metric: &str) -> bool {
        self.entries.iter().any(|e| e.metric == metric)
    }

    /// The methods with published numbers, in the file's order.
    pub(crate) fn methods(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in &self.entries {
            if !out.contains(&e.method) {
                out.push(e.method.clone());
            }
        }
        out
    }

    /// Every number of `method` for `metric`: `2.76 ± 0.09 (N=10); 2.63 (best)`.
    pub(crate) fn cell(&self, method: &str, metric: &str) -> String {
        let parts: Vec<String> = self
            .entries
            .iter()
            .filter(|e| e.method == method && e.metric == metric)
            .map(|e| cells::published(e.value, e.std, e.runs, e.stat == Stat::Best))
            .collect();
        parts.join("; ")
    }

    /// One footnote per source.
    pub(crate) fn notes(&self, t: &mut ReportTable) {
        let mut sources: Vec<(String, Vec<String>)> = Vec::new();
        for e in &self.entries {
            let what = format!("{} {}", e.method, e.metric);
            match sources.iter_mut().find(|(s, _)| *s == e.source) {
                Some((_, list)) => {
                    if !list.contains(&what) {
                        list.push(what)
                    }
                }
                None => sources.push((e.source.clone(), vec![what])),
            }
        }
        for (source, what) in sources {
            t.note(format!(
                "Published (not ours), from {source}: {}.",
                what.join(", ")
            ));
        }
    }
}

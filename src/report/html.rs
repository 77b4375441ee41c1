//! The HTML notebook pages, through maud templates (escaped by construction): one page per
//! experiment — its `description` as the first (Markdown) cell, the resolved config as a code cell,
//! provenance, deviations, then each stage with its tables and figures inline as cells with their
//! outputs — and an index that links them all with the suite's status. Pages are self-contained:
//! inline CSS and SVG, no script, no network, no server.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::figures::Figure;
use super::scan::Group;
use super::table::{Align, ReportTable};

const CSS: &str = r#"
body { font-family: "DejaVu Sans", Verdana, sans-serif; max-width: 68rem; margin: 2rem auto; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ccc; }
.cell { display: grid; grid-template-columns: 5.5rem 1fr; gap: .4rem; margin: 1rem 0; }
.prompt { font-family: monospace; color: #307fc1; text-align: right; padding-top: .3rem; font-size: .85rem; }
.prompt.out { color: #d84315; }
.input, .output { min-width: 0; overflow-x: auto; }
.input pre, .markdown { background: #f7f7f7; border: 1px solid #e0e0e0; border-radius: 3px; padding: .5rem .8rem; }
pre { overflow-x: auto; font-size: .82rem; margin: 0; }
td code { white-space: nowrap; }
td code.cmd { white-space: normal; overflow-wrap: anywhere; }
table[data-table="provenance"] { font-size: .72rem; }
table { border-collapse: collapse; font-size: .82rem; margin: .3rem 0; }
th, td { border-bottom: 1px solid #ddd; padding: .25rem .4rem; vertical-align: top; }
thead th { border-bottom: 2px solid #444; text-align: left; }
td.r, th.r { text-align: right; }
caption { caption-side: top; text-align: left; font-style: italic; padding-bottom: .3rem; }
ol.notes { font-size: .75rem; color: #444; padding-left: 1.4rem; }
div.table { overflow-x: auto; }
figure { margin: .5rem 0; }
figure svg { max-width: 100%; height: auto; }
figcaption { font-size: .85rem; font-style: italic; }
.smoke { color: #b34700; font-weight: bold; }
.links { font-size: .75rem; }
nav a { margin-right: 1rem; }
"#;

fn page(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body { (body) }
        }
    }
    .into_string()
}

/// Markdown (an experiment's `description`) as HTML.
fn markdown(text: &str) -> Markup {
    let parser = pulldown_cmark::Parser::new_ext(text, pulldown_cmark::Options::ENABLE_TABLES);
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, parser);
    PreEscaped(out)
}

pub(crate) fn table(t: &ReportTable, root: &str) -> Markup {
    let class = |a: Align| match a {
        Align::Left => "l",
        Align::Right => "r",
    };
    html! {
        div.table id=(format!("table-{}", t.name)) data-table=(t.name) {
            table {
                caption {
                    strong { (t.title) } ". "
                    @if let Some(rest) = t.caption.strip_prefix(super::table::SMOKE_CAPTION) {
                        span.smoke { (super::table::SMOKE_CAPTION) } (rest)
                    } @else { (t.caption) }
                }
                thead { tr { @for c in &t.columns { th class=(class(c.align)) { (c.label) } } } }
                tbody {
                    @for r in &t.rows {
                        tr { @for (c, v) in t.columns.iter().zip(r) { td class=(class(c.align)) { (v) } } }
                    }
                    @if t.rows.is_empty() { tr { td colspan=(t.columns.len()) { "(no runs yet)" } } }
                }
            }
            @if !t.footnotes.is_empty() {
                ol.notes { @for f in &t.footnotes { li { (f) } } }
            }
            p.links {
                "As files: "
                a href=(format!("{root}tables/{}.md", t.name)) { "Markdown" } " · "
                a href=(format!("{root}tables/{}.tex", t.name)) { "LaTeX" } " · "
                a href=(format!("{root}tables/{}.csv", t.name)) { "CSV" }
            }
        }
    }
}

pub(crate) fn figure(f: &Figure, svg: &str, root: &str) -> Markup {
    html! {
        figure id=(format!("figure-{}", f.name)) data-figure=(f.name) {
            (PreEscaped(svg))
            figcaption {
                strong { (f.title) } ". "
                @if f.smoke { span.smoke { (super::table::SMOKE_CAPTION) } ". " }
                (f.caption)
            }
            p.links {
                a href=(format!("{root}figures/{}.svg", f.name)) { "SVG" } " · "
                a href=(format!("{root}figures/{}-column.png", f.name)) { "PNG 3.5 in" } " · "
                a href=(format!("{root}figures/{}-page.png", f.name)) { "PNG 7 in" }
            }
        }
    }
}

/// A notebook cell: an input (code or Markdown) and, optionally, its outputs.
fn cell(n: usize, input: Markup, output: Option<Markup>) -> Markup {
    html! {
        div.cell {
            div.prompt { (format!("In [{n}]:")) }
            div.input { (input) }
            @if let Some(o) = output {
                div.prompt.out { (format!("Out [{n}]:")) }
                div.output { (o) }
            }
        }
    }
}

fn code(text: &str) -> Markup {
    html! { pre { code { (text) } } }
}

/// Every run's provenance, one row per run.
pub(crate) fn provenance(g: &Group) -> Markup {
    html! {
        table data-table="provenance" {
            thead { tr {
                th { "stage" } th { "seed" } th { "run id" } th { "state" } th { "device" }
                th { "git commit" } th { "unas / tch / libtorch" } th { "host (cpus)" }
                th { "deterministic" } th { "started, ended" } th { "command line" }
            } }
            tbody {
                @for r in &g.runs {
                    tr {
                        td { (r.stage) } td { (r.seed) } td { code { (r.run_id.chars().take(16).collect::<String>()) } }
                        td { (r.label()) } td { (r.device()) }
                        @if let Some(p) = &r.provenance {
                            td { code { (p.git_commit.as_deref().map(|c| &c[..c.len().min(10)]).unwrap_or("?")) }
                                 @if p.git_dirty == Some(true) { " (dirty)" } }
                            td { (p.unas_version) " / " (p.tch_version) " / " (p.libtorch_version) }
                            td { (p.host) " (" (p.cpus) ")" }
                            td { (p.deterministic) }
                            td { (p.started_at) br; (p.ended_at.as_deref().unwrap_or("—")) }
                            td { code.cmd { (p.command_line.join(" ")) } }
                        } @else {
                            td colspan="6" { "no provenance.json" }
                        }
                    }
                }
            }
        }
    }
}

/// What an experiment page shows of one stage.
pub(crate) struct StageView<'a> {
    pub stage: &'static str,
    pub tables: Vec<&'a ReportTable>,
    pub figures: Vec<(&'a Figure, &'a str)>,
}

pub(crate) fn experiment_page(g: &Group, provenance: Markup, stages: &[StageView]) -> String {
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    let body = html! {
        nav { a href="../index.html" { "← all experiments" } }
        h1 { (g.label) " — " (g.tier) " tier" }
        @if g.is_smoke() { p.smoke { (super::table::SMOKE_CAPTION) "." } }
        (cell(next(), html! { div.markdown { (markdown(&g.config.description)) } }, None))
        (cell(next(), code(&format!("# the resolved config.yaml of the runs\n{}", g.config_text)), None))
        (cell(next(), code("provenance.json of every run"), Some(provenance)))
        (cell(next(), code("deviations (from the experiment file)"), Some(html! {
            @if g.config.deviations.is_empty() { p { "None declared." } }
            @else { ul { @for d in &g.config.deviations { li { (d) } } } }
        })))
        @for s in stages {
            h2 { "Stage: " (s.stage) }
            @for t in &s.tables {
                (cell(next(), code(&format!("unas report --table {}", t.name)), Some(table(t, "../"))))
            }
            @for (f, svg) in &s.figures {
                (cell(next(), code(&format!("unas report --figure {}", f.name)), Some(figure(f, svg, "../"))))
            }
        }
    };
    page(
        &format!("{} ({} tier) — unas report", g.label, g.tier),
        body,
    )
}

/// One line of the index: a page, its tier and state.
pub(crate) struct IndexEntry {
    pub href: String,
    pub label: String,
    pub tier: String,
    pub state: String,
}

pub(crate) fn index_page(
    entries: &[IndexEntry],
    tables: &[&ReportTable],
    figures: &[(&Figure, &str)],
) -> String {
    let body = html! {
        h1 { "UNAS reproduction — report" }
        p {
            "Rebuilt by " code { "unas report" } " from the Parquet and JSON under "
            code { "results/runs" } ". Every number is ours unless its column says "
            em { "(published)" } "."
        }
        h2 { "Experiments" }
        table data-table="experiments" {
            thead { tr { th { "experiment" } th { "tier" } th { "runs" } } }
            tbody {
                @for e in entries {
                    tr { td { a href=(e.href) { (e.label) } } td { (e.tier) } td { (e.state) } }
                }
            }
        }
        h2 { "Tables" }
        @for t in tables { (table(t, "")) }
        h2 { "Figures" }
        @for (f, svg) in figures { (figure(f, svg, "")) }
    };
    page("unas report", body)
}

//! A report table: a name (`unas report --table NAME`), a title, a caption, columns, rows of finished
//! cell text, and footnotes; rendered to Markdown and CSV here, to LaTeX in [`super::latex`].

/// The caption every table and figure made from smoke-tier runs carries.
pub(crate) const SMOKE_CAPTION: &str = "smoke tier: pipeline check, not a result";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TableCol {
    pub label: String,
    pub align: Align,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ReportTable {
    pub name: String,
    pub title: String,
    pub caption: String,
    pub columns: Vec<TableCol>,
    pub rows: Vec<Vec<String>>,
    pub footnotes: Vec<String>,
}

impl ReportTable {
    pub(crate) fn new(name: &str, title: &str, caption: String) -> ReportTable {
        ReportTable {
            name: name.into(),
            title: title.into(),
            caption,
            columns: Vec::new(),
            rows: Vec::new(),
            footnotes: Vec::new(),
        }
    }

    pub(crate) fn col(&mut self, label: &str, align: Align) {
        self.columns.push(TableCol {
            label: label.into(),
            align,
        });
    }

    pub(crate) fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.columns.len(), "{}: row width", self.name);
        self.rows.push(row);
    }

    /// Adds a footnote once.
    pub(crate) fn note(&mut self, text: String) {
        if !self.footnotes.contains(&text) {
            self.footnotes.push(text);
        }
    }

    /// The caption with the smoke-tier warning where any of its numbers are smoke-tier.
    pub(crate) fn with_smoke_caption(mut self, smoke: bool) -> ReportTable {
        if smoke && !self.caption.contains(SMOKE_CAPTION) {
            self.caption = format!("{SMOKE_CAPTION}. {}", self.caption);
        }
        self
    }

    /// GitHub-flavoured Markdown: title, caption, the table, footnotes.
    pub(crate) fn markdown(&self) -> String {
        let esc = |c: &str| c.replace('|', "\\|").replace('\n', " ");
        let mut out = format!("## {}\n\n*{}*\n\n", self.title, esc(&self.caption));
        let header: Vec<String> = self.columns.iter().map(|c| esc(&c.label)).collect();
        out.push_str(&format!("| {} |\n", header.join(" | ")));
        let rules: Vec<&str> = self
            .columns
            .iter()
            .map(|c| match c.align {
                Align::Left => ":---",
                Align::Right => "---:",
            })
            .collect();
        out.push_str(&format!("|{}|\n", rules.join("|")));
        for r in &self.rows {
            let cells: Vec<String> = r.iter().map(|c| esc(c)).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        if self.rows.is_empty() {
            out.push_str("\n(no runs yet)\n");
        }
        if !self.footnotes.is_empty() {
            out.push('\n');
            for (i, f) in self.footnotes.iter().enumerate() {
                out.push_str(&format!("{}. {}\n", i + 1, esc(f)));
            }
        }
        out
    }

    /// RFC 4180 CSV: the header and the rows (cells quoted where they need it).
    pub(crate) fn csv(&self) -> String {
        fn field(s: &str) -> String {
            if s.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_owned()
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|c| field(&c.label)).collect();
        out.push_str(&header.join(","));
        out.push_str("\r\n");
        for r in &self.rows {
            let cells: Vec<String> = r.iter().map(|c| field(c)).collect();
            out.push_str(&cells.join(","));
            out.push_str("\r\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> ReportTable {
        let mut t = ReportTable::new("x", "X", "cap".into());
        t.col("a", Align::Left);
        t.col("b, c", Align::Right);
        t.push(vec!["1|2".into(), "say \"hi\"".into()]);
        t.note("n1".into());
        t.note("n1".into());
        t
    }

    #[test]
    fn markdown_escapes_pipes_aligns_and_numbers_footnotes_once() {
        assert_eq!(
            t().markdown(),
            "## X\n\n*cap*\n\n| a | b, c |\n|:---|---:|\n| 1\\|2 | say \"hi\" |\n\n1. n1\n"
        );
    }

    #[test]
    fn csv_quotes_commas_and_quotes() {
        assert_eq!(t().csv(), "a,\"b, c\"\r\n1|2,\"say \"\"hi\"\"\"\r\n");
    }

    #[test]
    fn smoke_caption_is_added_once() {
        let s = t().with_smoke_caption(true).with_smoke_caption(true);
        assert_eq!(s.caption.matches(SMOKE_CAPTION).count(), 1);
        assert_eq!(t().with_smoke_caption(false).caption, "cap");
    }
}

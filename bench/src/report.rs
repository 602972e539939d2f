//! Tables printed as Markdown, so a run can be pasted into BENCHMARKS.md as it is.

use std::fmt::Write as _;

/// A target (issues 8, 15, 16, 17): the figure must be at most `limit` (in the figure's own unit).
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub limit: f64,
    pub label: &'static str,
}

pub const REQUESTS_PER_MEMBERSHIP_EVENT: Target = Target { limit: 4.0, label: "≤ 4 requests" };
pub const REQUESTS_PER_SEAT_READ: Target = Target { limit: 2.0, label: "≤ 2 requests" };
pub const REQUESTS_PER_SEAT: Target = Target { limit: 0.06, label: "≤ 0.06 requests/seat" };
/// Issue 16: DynamoDB requests per row of an activity report ("batch the writes").
pub const REQUESTS_PER_ACTIVITY_ROW: Target = Target { limit: 0.05, label: "≤ 0.05 requests/row" };
pub const COLD_START_MS: Target = Target { limit: 20.0, label: "≤ 20 ms" };
pub const PEAK_RSS_MIB: Target = Target { limit: 24.0, label: "≤ 24 MB" };
/// Issue 17: a function's cold start or peak RSS over a bare `lambda_runtime` echo's.
pub const WITHIN_2X_ECHO: Target = Target { limit: 2.0, label: "≤ 2× echo" };

impl Target {
    pub fn verdict(self, value: f64) -> &'static str {
        if value <= self.limit { "OK" } else { "over" }
    }
}

/// One line of a table: what, the figure, and optionally its target and verdict.
#[derive(Debug, Clone)]
pub struct Row {
    pub what: String,
    pub figure: String,
    pub target: Option<(Target, f64)>,
    pub detail: String,
}

impl Row {
    pub fn new(what: impl Into<String>, figure: impl Into<String>) -> Self {
        Row { what: what.into(), figure: figure.into(), target: None, detail: String::new() }
    }

    /// Checks `value` (in the target's unit) against `target`.
    pub fn against(mut self, target: Target, value: f64) -> Self {
        self.target = Some((target, value));
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
}

/// A titled table.
#[derive(Debug, Clone, Default)]
pub struct Section {
    pub title: String,
    pub note: String,
    pub rows: Vec<Row>,
}

impl Section {
    pub fn new(title: impl Into<String>) -> Self {
        Section { title: title.into(), ..Section::default() }
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// The section as Markdown: a heading, the note, and a table.
    pub fn render(&self) -> String {
        let mut out = format!("### {}\n\n", self.title);
        if !self.note.is_empty() {
            let _ = writeln!(out, "{}\n", self.note);
        }
        out.push_str("| what | figure | target | verdict | detail |\n|---|---:|---|---|---|\n");
        for r in &self.rows {
            let (target, verdict) = match r.target {
                Some((t, v)) => (t.label, t.verdict(v)),
                None => ("", ""),
            };
            let _ = writeln!(out, "| {} | {} | {} | {} | {} |", r.what, r.figure, target, verdict, r.detail);
        }
        out
    }
}

/// Every row with a target, across sections, as the closing summary.
pub fn summary(sections: &[Section]) -> Section {
    let mut s = Section::new("Against the targets");
    for section in sections {
        for r in section.rows.iter().filter(|r| r.target.is_some()) {
            s.push(Row { what: format!("{}: {}", section.title, r.what), detail: String::new(), ..r.clone() });
        }
    }
    let over = s.rows.iter().filter(|r| r.target.is_some_and(|(t, v)| t.verdict(v) == "over")).count();
    s.note = format!("{} figures checked, {} within target, {} over.", s.rows.len(), s.rows.len() - over, over);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_at_the_limit_is_within_it() {
        assert_eq!(REQUESTS_PER_MEMBERSHIP_EVENT.verdict(4.0), "OK");
        assert_eq!(REQUESTS_PER_MEMBERSHIP_EVENT.verdict(5.0), "over");
        assert_eq!(REQUESTS_PER_SEAT.verdict(0.061), "over");
    }

    #[test]
    fn the_summary_counts_what_is_over() {
        let mut a = Section::new("A");
        a.push(Row::new("x", "3").against(REQUESTS_PER_MEMBERSHIP_EVENT, 3.0));
        a.push(Row::new("y", "7").against(REQUESTS_PER_MEMBERSHIP_EVENT, 7.0));
        a.push(Row::new("z", "no target"));
        let s = summary(&[a]);
        assert_eq!(s.rows.len(), 2);
        assert_eq!(s.note, "2 figures checked, 1 within target, 1 over.");
        assert!(s.render().contains("| A: y | 7 | ≤ 4 requests | over |"));
    }
}

//! A picture of a run (`detcd-sim replay … --html out.html`): one self-contained HTML page — inline
//! CSS, SVG and a little JavaScript, nothing fetched — with one lane per member (its role and
//! term over time; crashes, restarts, pauses, partitions, clogs, clock drift and lossy networks
//! as shaded spans; disk faults, failpoints, damage and membership steps as marks), the leader
//! changes, and one lane per client with its operations as bars from invoke to completion,
//! coloured by outcome. The operations a checker names are outlined, with its message.
//!
//! Everything comes from the run's trace and history ([`lanes`]), so it works for any run,
//! passing or failing, and for a report folder's files.

pub mod lanes;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::checkers::acknowledged_writes::CHECKER_CLIENT;
use crate::history::{Operation, Output};
use crate::simulation::{SeedRun, COMPACTOR_CLIENT};
use crate::workload;

use lanes::{Lane, Lanes};

/// The drawing's width in px, and the lane labels' share of it.
const WIDTH: f64 = 1600.0;
const LABEL: f64 = 90.0;
const LANE: f64 = 22.0;
const GAP: f64 = 6.0;

const STYLE: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

/// The page for `run`.
pub fn page(run: &SeedRun) -> String {
    let members: Vec<(String, u64)> = (0..run.options.nodes)
        .map(|i| {
            (
                crate::cluster::member_name(i),
                crate::cluster::initial_member_id(i, &run.options),
            )
        })
        .collect();
    let end_ms = run
        .trace
        .last()
        .map_or(0, |e| e.t_ms)
        .max(run.simulated.as_millis() as u64)
        .max(1);
    let lanes = lanes::read(&run.trace, &members, end_ms);
    let flagged = flagged(run);
    let mut svg = Svg::new(end_ms);
    svg.axis();
    svg.leader_changes(&lanes);
    for lane in &lanes.members {
        svg.member(lane);
    }
    svg.clients(&run.history.operations, &flagged);
    let title = format!(
        "detcd-sim seed {:#x}: {}",
        run.options.seed,
        run.verdict.name()
    );
    let mut violations = String::new();
    for v in &run.findings.violations {
        let ops: Vec<String> = v.operations.iter().map(usize::to_string).collect();
        let _ = writeln!(
            violations,
            "<li class=\"violation\" data-checker=\"{}\" data-ops=\"{}\"><b>{}</b> ({} operations): {}</li>",
            escape(&v.checker),
            ops.join(" "),
            escape(&v.checker),
            v.operations.len(),
            escape(&v.message)
        );
    }
    if let Some(panic) = &run.panic {
        let _ = writeln!(
            violations,
            "<li class=\"violation\" data-checker=\"panic\" data-ops=\"\"><b>panic</b>: {}</li>",
            escape(panic)
        );
    }
    if violations.is_empty() {
        violations = "<li>every checker passed</li>\n".to_string();
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>{title}</title>\n\
         <style>{STYLE}</style></head>\n<body data-verdict=\"{verdict}\">\n<header><h1>{title}</h1>\n\
         <p class=\"options\">{options}</p>\n<p class=\"faults\">{faults} faults, {ops} operations, \
         {nodes} members, simulated {simulated:.1} s, trace hash {hash:#018x}</p>\n\
         <ul class=\"violations\">\n{violations}</ul></header>\n{legend}\n<div class=\"drawing\">{svg}</div>\n\
         <pre id=\"details\">click an operation or a mark for its details</pre>\n\
         <script>{SCRIPT}</script>\n</body></html>\n",
        verdict = run.verdict.name(),
        options = escape(&run.options.describe()),
        faults = run.schedule.len(),
        ops = run.options.ops,
        nodes = run.options.nodes,
        simulated = run.simulated.as_secs_f64(),
        hash = run.trace_hash,
        legend = LEGEND,
        svg = svg.finish(),
    )
}

const LEGEND: &str = "<p class=\"legend\">\
<span class=\"key leader\">leader</span><span class=\"key follower\">follower</span>\
<span class=\"key no-leader\">no leader</span><span class=\"key down\">down</span>\
<span class=\"key pause\">paused</span><span class=\"key partition\">partitioned</span>\
<span class=\"key clog\">clogged</span><span class=\"key clock\">clock drift</span>\
<span class=\"key network\">lossy network</span> · marks: \
<span class=\"key mark-disk\">disk</span><span class=\"key mark-failpoint\">failpoint</span>\
<span class=\"key mark-crash\">crash</span><span class=\"key mark-damage\">damage</span>\
<span class=\"key mark-membership\">membership</span><span class=\"key mark-interrupt\">ctrl-c</span> · \
operations: <span class=\"key ok\">ok</span><span class=\"key failed\">failed</span>\
<span class=\"key indeterminate\">indeterminate</span><span class=\"key flagged\">named by a checker</span></p>";

/// Each operation a checker names, with the checkers naming it.
fn flagged(run: &SeedRun) -> BTreeMap<usize, BTreeSet<String>> {
    let mut flagged: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for v in &run.findings.violations {
        for &id in &v.operations {
            flagged.entry(id).or_default().insert(v.checker.clone());
        }
    }
    flagged
}

fn outcome(op: &Operation) -> &'static str {
    match op.output {
        Output::Failed { .. } => "failed",
        Output::Indeterminate { .. } => "indeterminate",
        _ => "ok",
    }
}

fn client_name(client: u32) -> String {
    match client {
        CHECKER_CLIENT => "checker".to_string(),
        COMPACTOR_CLIENT => "compactor".to_string(),
        n => format!("client{n}"),
    }
}

/// The SVG, built top to bottom.
struct Svg {
    body: String,
    y: f64,
    scale: f64,
}

impl Svg {
    fn new(end_ms: u64) -> Svg {
        Svg {
            body: String::new(),
            y: 0.0,
            scale: (WIDTH - LABEL - 10.0) / end_ms as f64,
        }
    }

    fn x(&self, ms: u64) -> f64 {
        LABEL + ms as f64 * self.scale
    }

    fn width(&self, from_ms: u64, to_ms: u64) -> f64 {
        ((to_ms.saturating_sub(from_ms)) as f64 * self.scale).max(1.5)
    }

    fn axis(&mut self) {
        let end_ms = ((WIDTH - LABEL - 10.0) / self.scale) as u64;
        let step = [
            1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 60_000, 120_000, 300_000,
        ]
        .into_iter()
        .find(|step| end_ms / step <= 20)
        .unwrap_or(600_000);
        let _ = write!(self.body, "<g class=\"axis\">");
        for t in (0..=end_ms).step_by(step as usize) {
            let x = self.x(t);
            let _ = write!(
                self.body,
                "<line x1=\"{x:.1}\" y1=\"14\" x2=\"{x:.1}\" y2=\"20\"/><text x=\"{x:.1}\" y=\"11\">{}s</text>",
                t / 1000
            );
        }
        let _ = write!(self.body, "</g>");
        self.y = 24.0;
    }

    fn leader_changes(&mut self, lanes: &Lanes) {
        let y = self.y;
        let _ = write!(
            self.body,
            "<g class=\"leader-changes\"><text class=\"label\" x=\"4\" y=\"{:.1}\">leaders</text>",
            y + 14.0
        );
        for change in &lanes.leader_changes {
            let x = self.x(change.at_ms);
            let _ = write!(
                self.body,
                "<g class=\"leader-change\" data-term=\"{}\"><path d=\"M{x:.1} {:.1} l5 8 l-5 8 l-5 -8 z\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{} t{}</text><title>term {}: leader {} (first reported at {} ms)</title></g>",
                change.term,
                y + 2.0,
                x + 6.0,
                y + 14.0,
                escape(&change.leader),
                change.term,
                change.term,
                escape(&change.leader),
                change.at_ms
            );
        }
        let _ = write!(self.body, "</g>");
        self.y += LANE + GAP;
    }

    fn member(&mut self, lane: &Lane) {
        let y = self.y;
        let _ = write!(
            self.body,
            "<g class=\"lane member\" data-member=\"{name}\"><text class=\"label\" x=\"4\" y=\"{:.1}\">{name}</text>",
            y + 15.0,
            name = escape(&lane.name)
        );
        for role in &lane.roles {
            self.rect(
                &format!("role {}", role.kind),
                role.from_ms,
                role.to_ms,
                y,
                LANE,
                &role.label,
            );
        }
        for span in &lane.spans {
            self.rect(
                &format!("span {}", span.kind),
                span.from_ms,
                span.to_ms,
                y + 3.0,
                LANE - 6.0,
                &format!(
                    "{} {}–{} ms: {}",
                    span.kind, span.from_ms, span.to_ms, span.label
                ),
            );
        }
        for mark in &lane.marks {
            let x = self.x(mark.at_ms);
            let _ = write!(
                self.body,
                "<path class=\"mark {}\" d=\"M{x:.1} {:.1} l4 -7 l-8 0 z\"><title>{} ms: {}</title></path>",
                mark.kind,
                y + 8.0,
                mark.at_ms,
                escape(&mark.label)
            );
        }
        let _ = write!(self.body, "</g>");
        self.y += LANE + GAP;
    }

    fn clients(&mut self, operations: &[Operation], flagged: &BTreeMap<usize, BTreeSet<String>>) {
        let mut by_client: BTreeMap<u32, Vec<&Operation>> = BTreeMap::new();
        for op in operations {
            by_client.entry(op.client).or_default().push(op);
        }
        for (client, ops) in by_client {
            let y = self.y;
            let _ = write!(
                self.body,
                "<g class=\"lane client\" data-client=\"{name}\"><text class=\"label\" x=\"4\" y=\"{:.1}\">{name}</text>",
                y + 13.0,
                name = client_name(client)
            );
            for op in ops {
                let (from, to) = (op.invoke_ns / 1_000_000, op.complete_ns / 1_000_000);
                let checkers = flagged.get(&op.id);
                let class = match checkers {
                    Some(_) => format!("op {} flagged", outcome(op)),
                    None => format!("op {}", outcome(op)),
                };
                let named = checkers.map_or(String::new(), |c| {
                    format!(
                        " data-checkers=\"{}\"",
                        c.iter().cloned().collect::<Vec<_>>().join(" ")
                    )
                });
                let _ = write!(
                    self.body,
                    "<rect class=\"{class}\" data-op=\"{}\"{named} x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\">\
                     <title>#{} {}–{} ms: {}</title></rect>",
                    op.id,
                    self.x(from),
                    y + 2.0,
                    self.width(from, to),
                    LANE - 6.0,
                    op.id,
                    from,
                    to,
                    escape(&workload::describe(op))
                );
            }
            let _ = write!(self.body, "</g>");
            self.y += LANE - 2.0;
        }
    }

    fn rect(&mut self, class: &str, from_ms: u64, to_ms: u64, y: f64, height: f64, title: &str) {
        let _ = write!(
            self.body,
            "<rect class=\"{class}\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{height:.1}\"><title>{}</title></rect>",
            self.x(from_ms),
            self.width(from_ms, to_ms),
            escape(title)
        );
    }

    fn finish(self) -> String {
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{:.0}\" viewBox=\"0 0 {WIDTH} {:.0}\">{}</svg>",
            self.y + 4.0,
            self.y + 4.0,
            self.body
        )
    }
}

/// Text for HTML and SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_messages_is_escaped() {
        assert_eq!(escape("a<b & \"c\">"), "a&lt;b &amp; &quot;c&quot;&gt;");
    }
}

//! `--junit FILE`: the sweep as a JUnit XML report, so CI systems (GitHub, GitLab, Jenkins) show
//! a failing seed natively: one test case per failing seed, named by its seed and verdict, with
//! the failure text and the replay command. Passing seeds are counted in the suite, not listed.

use crate::summary::Summary;

pub fn to_xml(summary: &Summary) -> String {
    let failing: Vec<_> = summary.seeds.iter().filter(|r| r.failed()).collect();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml += &format!(
        "<testsuites name=\"detcd-sim\" tests=\"{}\" failures=\"{}\" time=\"{:.3}\">\n",
        summary.totals.seeds,
        failing.len(),
        summary.wall_s
    );
    xml += &format!(
        "  <testsuite name=\"detcd-sim sweep\" tests=\"{}\" failures=\"{}\" time=\"{:.3}\">\n",
        summary.totals.seeds,
        failing.len(),
        summary.wall_s
    );
    xml += &format!(
        "    <properties>\n      <property name=\"detcd_commit\" value=\"{}\"/>\n      <property name=\"passed_seeds\" value=\"{}\"/>\n    </properties>\n",
        escape(&summary.detcd_commit),
        summary.totals.seeds - failing.len() as u64
    );
    for record in failing {
        let failure = record.failure.as_ref();
        let verdict = if record.verdict.name() == "pass" {
            "nondeterministic"
        } else {
            record.verdict.name()
        };
        let checkers = failure.map_or(String::new(), |f| f.checkers.join(", "));
        let message = if checkers.is_empty() {
            verdict.to_string()
        } else {
            format!("{verdict}: {checkers}")
        };
        let replay = failure.map_or("", |f| f.replay.as_str());
        let mut body = failure.map_or(String::new(), |f| f.text.clone());
        if let Some(second) = &record.second_hash {
            body += &format!(
                "nondeterministic: trace hash {} then {second}\n  replay: {replay}\n",
                record.trace_hash
            );
        }
        xml += &format!(
            "    <testcase classname=\"detcd-sim.{verdict}\" name=\"seed {:#x}\">\n      <failure type=\"{verdict}\" message=\"{}\">{}</failure>\n      <system-out>{}</system-out>\n    </testcase>\n",
            record.seed,
            escape(&message),
            escape(&body),
            escape(replay)
        );
    }
    xml += "  </testsuite>\n</testsuites>\n";
    xml
}

/// XML text and attribute escaping; characters XML 1.0 cannot hold at all become U+FFFD.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped += "&amp;",
            '<' => escaped += "&lt;",
            '>' => escaped += "&gt;",
            '"' => escaped += "&quot;",
            '\'' => escaped += "&apos;",
            '\n' | '\t' | '\r' => escaped.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {
                escaped.push('\u{fffd}')
            }
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::RunSpec;
    use crate::simulation::Verdict;
    use crate::summary::{Failure, SeedRecord, Totals};

    #[test]
    fn one_test_case_per_failing_seed_with_its_replay_command() {
        let spec = RunSpec {
            nodes: Some(1),
            faults: Vec::new(),
            ops: 10,
            bugs: Vec::new(),
        };
        let mut summary = Summary::new(spec, 1, None, false, false);
        let pass = SeedRecord {
            seed: 1,
            verdict: Verdict::Pass,
            trace_hash: "0x1".into(),
            second_hash: None,
            failure: None,
        };
        let fail = SeedRecord {
            seed: 2,
            verdict: Verdict::Correctness,
            trace_hash: "0x2".into(),
            second_hash: None,
            failure: Some(Failure {
                checkers: vec!["linearizability".into()],
                text: "FAIL seed 0x2: a <stale> read & \u{1} more\n".into(),
                replay: "scripts/sim replay --seed 0x2".into(),
                report: None,
            }),
        };
        let one = Totals {
            seeds: 1,
            ..Totals::default()
        };
        summary.add(pass, &one, &Default::default());
        summary.add(fail, &one, &Default::default());
        summary.finish(std::time::Duration::from_secs(1));
        let xml = to_xml(&summary);
        assert_eq!(xml.matches("<testcase ").count(), 1, "{xml}");
        assert!(xml.contains("name=\"seed 0x2\""), "{xml}");
        assert!(
            xml.contains("message=\"correctness: linearizability\""),
            "{xml}"
        );
        assert!(
            xml.contains("a &lt;stale&gt; read &amp; \u{fffd} more"),
            "{xml}"
        );
        assert!(
            xml.contains("<system-out>scripts/sim replay --seed 0x2</system-out>"),
            "{xml}"
        );
        assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
    }
}

//! Reading the serial log of a test suite.
//!
//! A suite prints one line per test and a summary line:
//!
//! ```text
//! [test] <name> ... ok
//! [test] <name> ... FAILED: <reason>
//! [suite] <suite-name>: N passed, M failed
//! ```
//!
//! A suite directory may hold `expect.txt`: substrings (one a line; blank lines and lines
//! starting with `#` are skipped) that must all appear in the log.

use crate::runner::{RunOutput, Termination};

/// Outcome of one `[test]` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TestOutcome {
    /// `... ok`
    Ok,
    /// `... FAILED: <reason>`
    Failed(String),
}

/// One `[test]` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestLine {
    /// The test's name.
    pub name: String,
    /// Its outcome.
    pub outcome: TestOutcome,
}

/// The `[suite]` summary line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuiteSummary {
    /// The suite's name.
    pub name: String,
    /// Tests that passed.
    pub passed: u32,
    /// Tests that failed.
    pub failed: u32,
}

/// Everything the protocol lines of a log say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SuiteReport {
    /// The `[test]` lines, in order.
    pub tests: Vec<TestLine>,
    /// The last `[suite]` line, if any.
    pub summary: Option<SuiteSummary>,
}

impl SuiteReport {
    /// The tests whose line says `FAILED`.
    pub fn failures(&self) -> impl Iterator<Item = &TestLine> {
        self.tests.iter().filter(|t| t.outcome != TestOutcome::Ok)
    }
}

const TEST: &str = "[test] ";
const SUITE: &str = "[suite] ";

/// Parses the protocol lines of `log`. Other lines (kernel messages) are ignored; a marker
/// may be preceded by other text on its line.
pub fn parse(log: &str) -> SuiteReport {
    let mut report = SuiteReport::default();
    for line in log.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(at) = line.find(TEST) {
            if let Some(t) = parse_test(&line[at + TEST.len()..]) {
                report.tests.push(t);
            }
        } else if let Some(s) = line
            .find(SUITE)
            .and_then(|at| parse_summary(&line[at + SUITE.len()..]))
        {
            report.summary = Some(s);
        }
    }
    report
}

fn parse_test(rest: &str) -> Option<TestLine> {
    if let Some((name, reason)) = rest.split_once(" ... FAILED") {
        let reason = reason.trim_start_matches(':').trim().to_owned();
        return Some(TestLine {
            name: name.trim().to_owned(),
            outcome: TestOutcome::Failed(reason),
        });
    }
    let name = rest.trim_end().strip_suffix(" ... ok")?;
    Some(TestLine {
        name: name.trim().to_owned(),
        outcome: TestOutcome::Ok,
    })
}

fn parse_summary(rest: &str) -> Option<SuiteSummary> {
    let (name, counts) = rest.rsplit_once(": ")?;
    let (passed, failed) = counts.trim().split_once(", ")?;
    let passed = passed.strip_suffix(" passed")?.trim().parse().ok()?;
    let failed = failed
        .split(',')
        .next()?
        .trim()
        .strip_suffix(" failed")?
        .trim()
        .parse()
        .ok()?;
    Some(SuiteSummary {
        name: name.trim().to_owned(),
        passed,
        failed,
    })
}

/// The substrings listed in an `expect.txt` text.
pub fn parse_expectations(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The entries of `expected` that do not occur in `log`.
pub fn missing<'a>(log: &str, expected: &'a [String]) -> Vec<&'a str> {
    expected
        .iter()
        .filter(|e| !log.contains(e.as_str()))
        .map(String::as_str)
        .collect()
}

/// Judges a suite run: it passes iff QEMU exited 0, a summary line reports 0 failures, and
/// every expected substring appears. Returns the reasons it failed (empty: passed).
pub fn judge(output: &RunOutput, expected: &[String]) -> Vec<String> {
    judge_exit(output, expected, 0)
}

/// [`judge`] for a run that must end with QEMU exiting with `exit` (a suite whose last
/// step deliberately stops the kernel: `expect_exit = N` in its `suite.txt`).
pub fn judge_exit(output: &RunOutput, expected: &[String], exit: i32) -> Vec<String> {
    let mut reasons = Vec::new();
    match output.termination {
        Termination::Exited(code) if code == exit => {}
        Termination::TimedOut => reasons.push(format!(
            "timed out after {:.0} s",
            output.elapsed.as_secs_f64()
        )),
        other => reasons.push(format!("QEMU ended with {other}")),
    }
    let report = parse(&output.stdout);
    match &report.summary {
        None => reasons.push("no `[suite] ...` summary line".to_owned()),
        Some(s) if s.failed > 0 => reasons.push(format!(
            "{} of {} tests failed",
            s.failed,
            s.passed + s.failed
        )),
        Some(_) => {}
    }
    for t in report.failures() {
        if let TestOutcome::Failed(why) = &t.outcome {
            reasons.push(format!("test `{}` FAILED: {why}", t.name));
        }
    }
    for m in missing(&output.stdout, expected) {
        reasons.push(format!("expected text not in log: `{m}`"));
    }
    reasons
}

/// Judges a run in which the kernel must refuse to start the root task (a suite booted
/// with a deliberately broken root task image): QEMU must end with `exit` (the kernel's
/// own stop, not a panic or a timeout), no `[test]` or `[suite]` line may appear (the
/// root task must not have run at all), and every expected substring (the kernel's
/// message) must appear. Returns the reasons it failed (empty: passed).
pub fn judge_refused(output: &RunOutput, expected: &[String], exit: i32) -> Vec<String> {
    let mut reasons = Vec::new();
    match output.termination {
        Termination::Exited(code) if code == exit => {}
        Termination::TimedOut => reasons.push(format!(
            "timed out after {:.0} s",
            output.elapsed.as_secs_f64()
        )),
        other => reasons.push(format!("QEMU ended with {other}, not exit status {exit}")),
    }
    if output.stdout.contains(TEST) || output.stdout.contains(SUITE) {
        reasons.push("the root task ran: a `[test]` or `[suite]` line is in the log".to_owned());
    }
    for m in missing(&output.stdout, expected) {
        reasons.push(format!("expected text not in log: `{m}`"));
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const LOG: &str = "KaaL kernel 0.1.0\r\n\
        [test] boot_info_valid ... ok\r\n\
        [kernel] user fault: data abort at 0x0\n\
        [test] ram_matches ... FAILED: expected 256 MiB, got 128 MiB ... really\n\
        [test] weird line without result\n\
        [suite] basics: 1 passed, 1 failed\n";

    #[test]
    fn parses_tests_and_summary() {
        let r = parse(LOG);
        assert_eq!(r.tests.len(), 2);
        assert_eq!(
            r.tests[0],
            TestLine {
                name: "boot_info_valid".into(),
                outcome: TestOutcome::Ok
            }
        );
        assert_eq!(r.tests[1].name, "ram_matches");
        assert_eq!(
            r.tests[1].outcome,
            TestOutcome::Failed("expected 256 MiB, got 128 MiB ... really".into())
        );
        assert_eq!(
            r.summary,
            Some(SuiteSummary {
                name: "basics".into(),
                passed: 1,
                failed: 1
            })
        );
        assert_eq!(r.failures().count(), 1);
    }

    #[test]
    fn marker_may_follow_a_prefix() {
        let r = parse("0.01 [test] a ... ok\n[user] [suite] s: 3 passed, 0 failed\n");
        assert_eq!(r.tests.len(), 1);
        assert_eq!(r.summary.unwrap().passed, 3);
    }

    #[test]
    fn bad_summary_is_ignored() {
        assert_eq!(parse("[suite] s: lots passed, 0 failed\n").summary, None);
        assert_eq!(parse("[suite] s 1 passed, 0 failed\n").summary, None);
    }

    #[test]
    fn expectations_skip_blank_and_comment_lines() {
        let e = parse_expectations(
            "# kernel report\n\nuser fault: data abort\r\n  # indented comment\nend\n",
        );
        assert_eq!(
            e,
            vec!["user fault: data abort".to_owned(), "end".to_owned()]
        );
        assert_eq!(missing(LOG, &e), vec!["end"]);
    }

    fn output(termination: Termination, stdout: &str) -> RunOutput {
        RunOutput {
            termination,
            stdout: stdout.into(),
            stderr: String::new(),
            elapsed: Duration::from_secs(1),
        }
    }

    #[test]
    fn judge_requires_exit_zero_summary_and_expectations() {
        let good = "[test] a ... ok\n[suite] s: 1 passed, 0 failed\n";
        assert!(judge(&output(Termination::Exited(0), good), &[]).is_empty());
        assert_eq!(judge(&output(Termination::Exited(1), good), &[]).len(), 1);
        assert_eq!(
            judge(&output(Termination::TimedOut, good), &[]),
            vec!["timed out after 1 s"]
        );
        assert_eq!(
            judge(&output(Termination::Exited(0), "[test] a ... ok\n"), &[]).len(),
            1
        );
        let reasons = judge(&output(Termination::Exited(1), LOG), &["nope".to_owned()]);
        assert_eq!(reasons.len(), 4, "{reasons:?}");
    }

    #[test]
    fn judge_exit_requires_the_given_status() {
        let good = "[test] a ... ok\n[suite] s: 1 passed, 0 failed\n";
        assert!(judge_exit(&output(Termination::Exited(101), good), &[], 101).is_empty());
        assert_eq!(
            judge_exit(&output(Termination::Exited(0), good), &[], 101).len(),
            1
        );
    }

    #[test]
    fn judge_refused_wants_the_exit_status_the_message_and_no_root_task() {
        let refused = "KaaL kernel\n[kaal] root task \"root-task\" refused: segment 1: bad\n";
        let message = ["refused: segment 1".to_owned()];
        assert!(judge_refused(&output(Termination::Exited(1), refused), &message, 1).is_empty());
        // A panic (101), a hang, a root task that ran, a missing message.
        assert_eq!(
            judge_refused(&output(Termination::Exited(101), refused), &message, 1).len(),
            1
        );
        assert_eq!(
            judge_refused(&output(Termination::TimedOut, refused), &message, 1),
            vec!["timed out after 1 s"]
        );
        let ran = "[suite] s: starting\n[suite] s: 0 passed, 1 failed\n";
        assert_eq!(
            judge_refused(&output(Termination::Exited(1), ran), &message, 1).len(),
            2
        );
    }
}

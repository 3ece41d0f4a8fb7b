//! Fuzzes the workload file parser (`harness_core::workload`, read as the load tester reads it:
//! `load_tester::workload::Workload::parse`).
//!
//! Properties, for any text:
//! - it never panics;
//! - a syntax error points at the offending token: its line (1-based) is a line of the input and
//!   its column (1-based, in characters) a character of that line that is neither a separator
//!   nor inside a comment;
//! - an accepted schedule is not empty, has at least one non-zero second, keeps every rate within
//!   [`MAX_RATE`], and written back one number per line parses to the same schedule.

#![no_main]

use libfuzzer_sys::fuzz_target;
use load_tester::workload::{MAX_RATE, Workload, WorkloadError};

fuzz_target!(|data: &[u8]| {
    // Workload files are read as UTF-8; lossy conversion lets every input reach the parser.
    let text = String::from_utf8_lossy(data);
    match Workload::parse(&text, "fuzz.txt") {
        Ok(workload) => check_schedule(&workload),
        Err(WorkloadError::Syntax { line, column, .. }) => check_position(&text, line, column),
        Err(WorkloadError::Empty { .. }) => {}
        Err(err @ WorkloadError::Io { .. }) => panic!("parsing text reported an I/O error: {err}"),
    }
});

fn check_schedule(workload: &Workload) {
    let rates = workload.rates();
    assert!(rates.iter().any(|&r| r > 0), "{rates:?}");
    assert!(rates.iter().all(|&r| r <= MAX_RATE), "{rates:?}");
    let written: String = rates.iter().map(|r| format!("{r}\n")).collect();
    let reparsed = Workload::parse(&written, "written.txt")
        .unwrap_or_else(|err| panic!("a parsed schedule does not parse back: {err}"));
    assert_eq!(&reparsed, workload);
}

fn check_position(text: &str, line: usize, column: usize) {
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        (1..=lines.len()).contains(&line),
        "line {line} of {} lines",
        lines.len()
    );
    let content = lines[line - 1].split('#').next().unwrap_or_default();
    let at = content.chars().nth(column.wrapping_sub(1));
    assert!(
        at.is_some_and(|c| c != ',' && !c.is_whitespace()),
        "column {column} of line {line} ({content:?}) is {at:?}, not a character of a token"
    );
}

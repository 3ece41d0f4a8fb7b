//! Bad configuration files: every file of `tests/corpus/bad-config/` goes through each real
//! entry point that reads such a file at start-up, and must be refused with an error that
//! names the file, the line and column, and the reason listed for it in `expected.txt`.
//!
//! The file name says which reader it is for: `workload-*` (the workload format: the load
//! tester's library, `load-tester run`'s option loading, `pipeline demo --workload` and, but for
//! the decimal, `autoscaler simulate --workload`, which must all say the same), `autoscaler-*`
//! (the tuning YAML: `Tuning::load`, `autoscaler serve --config`,
//! `pipeline demo --autoscaler-config`), `simulate-*` (`autoscaler simulate --workload`,
//! whose traces allow decimals). A file without an expectation fails the test, so the corpus
//! and its expectations cannot drift apart.

// Helpers outside #[test] functions unwrap too: a panic there is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Parser;

/// Where a file must be refused, and a part of why.
#[derive(Debug)]
struct Expected {
    line: usize,
    column: usize,
    reason: String,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/bad-config")
}

fn repo(relative: &str) -> OsString {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
        .into_os_string()
}

/// `expected.txt`: `<file> <line> <column> <substring of the reason>`; `#` comments.
fn expectations() -> BTreeMap<String, Expected> {
    let text = std::fs::read_to_string(corpus_dir().join("expected.txt")).unwrap();
    let mut all = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.splitn(4, ' ');
        let mut next = || fields.next().unwrap_or_default();
        let (file, line_no, column, reason) = (next(), next(), next(), next());
        let parse = |n: &str| {
            n.parse()
                .unwrap_or_else(|_| panic!("expected.txt:{}: {n:?} is not a number", index + 1))
        };
        assert!(!reason.is_empty(), "expected.txt:{}: no reason", index + 1);
        let expected = Expected {
            line: parse(line_no),
            column: parse(column),
            reason: reason.to_owned(),
        };
        let previous = all.insert(file.to_owned(), expected);
        assert!(previous.is_none(), "expected.txt lists {file} twice");
    }
    all
}

/// The line and column an error message names for `path`: `path:line:column:` (the load
/// tester's workload errors) or `line N column M` (YAML and simulator errors).
fn position(message: &str, path: &str) -> Option<(usize, usize)> {
    let number = |text: &str| -> Option<(usize, usize)> {
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        Some((text[..digits].parse().ok()?, digits))
    };
    if let Some(at) = message.find(&format!("{path}:")) {
        let rest = &message[at + path.len() + 1..];
        if let Some((line, n)) = number(rest)
            && let Some(rest) = rest[n..].strip_prefix(':')
            && let Some((column, _)) = number(rest)
        {
            return Some((line, column));
        }
    }
    let at = message.find("line ")?;
    let rest = &message[at + 5..];
    let (line, n) = number(rest)?;
    let rest = rest[n..].strip_prefix(" column ")?;
    Some((line, number(rest)?.0))
}

/// The errors every entry point that reads `path` gives, labelled by entry point.
async fn errors_for(name: &str, path: &Path) -> Vec<(&'static str, String)> {
    if name.starts_with("workload-") {
        workload_errors(path).await
    } else if name.starts_with("autoscaler-") {
        tuning_errors(path)
    } else if name.starts_with("simulate-") {
        vec![("autoscaler simulate --workload", simulate_error(path))]
    } else {
        panic!("{name}: the name does not say which reader it is for");
    }
}

async fn workload_errors(path: &Path) -> Vec<(&'static str, String)> {
    let library = load_tester::Workload::load(path).unwrap_err().to_string();
    let cli = load_tester::Cli::try_parse_from([
        "load-tester".into(),
        "run".into(),
        "--workload".into(),
        path.as_os_str().to_owned(),
        "--images".into(),
        repo("images"),
    ] as [OsString; 6])
    .unwrap();
    let load_tester::Command::Run(args) = cli.command else {
        unreachable!("parsed `run`")
    };
    let run = match load_tester::RunOptions::from_args(&args.generator).await {
        Ok(_) => panic!("{}: `load-tester run` accepted it", path.display()),
        Err(err) => err.to_string(),
    };
    let mut errors = vec![
        ("load_tester::Workload::load", library),
        ("load-tester run --workload", run),
        ("pipeline demo --workload", demo_error("--workload", path)),
    ];
    // One parser: the simulator says the same of every file, but for the decimal it accepts.
    if !path.ends_with("workload-decimal.txt") {
        errors.push(("autoscaler simulate --workload", simulate_error(path)));
    }
    errors
}

/// The part of a message from the file's name on: `path:line:column: problem`, whatever the
/// entry point put in front of it.
fn from_path<'m>(message: &'m str, path: &str) -> Option<&'m str> {
    message.find(path).map(|at| &message[at..])
}

fn tuning_errors(path: &Path) -> Vec<(&'static str, String)> {
    let library = autoscaler::Tuning::load(Some(path), &Default::default())
        .unwrap_err()
        .to_string();
    let cli = autoscaler::Cli::try_parse_from([
        "autoscaler".into(),
        "serve".into(),
        "--config".into(),
        path.as_os_str().to_owned(),
    ] as [OsString; 4])
    .unwrap();
    let autoscaler::Command::Serve(config) = cli.command else {
        unreachable!("parsed `serve`")
    };
    let serve = config.validate().unwrap_err().to_string();
    vec![
        ("autoscaler::Tuning::load", library),
        ("autoscaler serve --config", serve),
        (
            "pipeline demo --autoscaler-config",
            demo_error("--autoscaler-config", path),
        ),
    ]
}

fn simulate_error(path: &Path) -> String {
    let cli = autoscaler::Cli::try_parse_from([
        "autoscaler".into(),
        "simulate".into(),
        "--workload".into(),
        path.as_os_str().to_owned(),
        "--policy".into(),
        "hpa".into(),
    ] as [OsString; 6])
    .unwrap();
    let autoscaler::Command::Simulate(args) = cli.command else {
        unreachable!("parsed `simulate`")
    };
    let simulated = args
        .validate()
        .and_then(|options| autoscaler::simulate::run(&options));
    format!("{:#}", simulated.unwrap_err())
}

/// `pipeline demo` with the repository's model, labels and images and `flag path`.
fn demo_error(flag: &str, path: &Path) -> String {
    let mut argv: Vec<OsString> = vec!["pipeline".into(), "demo".into()];
    for (name, value) in [
        ("--workload", "workload.txt"),
        ("--images", "images"),
        ("--model", "inference/model/efficientnet-lite0.onnx"),
        ("--labels", "inference/model/imagenet-labels.txt"),
    ] {
        if name != flag {
            argv.extend([name.into(), repo(value)]);
        }
    }
    argv.extend([flag.into(), path.as_os_str().to_owned()]);
    let pipeline::Command::Demo(args) = pipeline::Cli::try_parse_from(argv).unwrap().command;
    format!("{:#}", args.validate().unwrap_err())
}

#[tokio::test]
async fn every_bad_file_is_refused_with_file_line_column_and_reason() {
    let mut expected = expectations();
    let mut failures = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().is_some_and(|n| n != "expected.txt"))
        .collect();
    files.sort();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(want) = expected.remove(&name) else {
            failures.push(format!("{name}: not listed in expected.txt"));
            continue;
        };
        let shown = path.display().to_string();
        let errors = errors_for(&name, path).await;
        if name.starts_with("workload-") {
            // The same mistake gets the same words at the same place from every reader.
            let said: std::collections::BTreeSet<_> = errors
                .iter()
                .filter_map(|(_, message)| from_path(message, &shown))
                .collect();
            if said.len() != 1 {
                failures.push(format!("{name}: the readers disagree: {said:?}"));
            }
        }
        for (entry_point, message) in errors {
            println!("{name} via {entry_point}: {message}");
            let at = position(&message, &shown);
            if !message.contains(&shown)
                || at != Some((want.line, want.column))
                || !message.contains(&want.reason)
            {
                failures.push(format!(
                    "{name} via {entry_point}: expected {}:{} {:?}, got {at:?} in {message:?}",
                    want.line, want.column, want.reason
                ));
            }
        }
    }
    for name in expected.keys() {
        failures.push(format!("expected.txt lists {name}, which does not exist"));
    }
    assert!(!files.is_empty());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

//! A load tester killed mid-run (`SIGKILL`) loses nothing it can account for: its journal
//! rebuilds the report (`load-tester report --run-dir`), the records the dispatcher finished
//! after the kill are collected into it, and every request sent ends as succeeded, failed,
//! rejected, a send error or missing with a reason (`load tester stopped`).
//!
//! Real parts: inference with the real model and the dispatcher in this process, and the
//! `load-tester` binary as its own process (the one thing that gets killed). The dispatcher
//! drains slowly (3 items/s), so at the kill most accepted items still wait in its queue.

#![allow(clippy::unwrap_used)]

#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/procs.rs"]
mod procs;

use std::path::{Path, PathBuf};
use std::time::Duration;

use in_process::repo;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The one run folder under `reports`, once its journal exists.
async fn run_dir(reports: &Path) -> PathBuf {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        // The folder appears with the run's journal.
        if let Some(dir) = std::fs::read_dir(reports)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|dir| dir.join("journal.jsonl").is_file())
        {
            return dir;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no journal appeared"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `load-tester report --run-dir DIR`: its exit status, output and the stats it wrote.
async fn rebuild(dir: &Path) -> (String, Value) {
    let output = tokio::process::Command::new(procs::binary("load-tester"))
        .args(["report", "--run-dir"])
        .arg(dir)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let stats = std::fs::read(dir.join("stats.json")).unwrap();
    (stdout, serde_json::from_slice(&stats).unwrap())
}

/// Every request sent has one fate, and the missing ones have the reason.
fn assert_accounted(stats: &Value) {
    let n = |key: &str| {
        stats[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key}: {stats}"))
    };
    assert_eq!(
        n("sent"),
        n("succeeded") + n("failed") + n("rejected") + n("sendErrors") + n("missing"),
        "{stats:#}"
    );
    assert_eq!(
        stats["missingByReason"]["load tester stopped"].as_u64(),
        Some(n("missing")),
        "every missing request is missing because the load tester stopped: {stats:#}"
    );
    assert_eq!(stats["journal"]["rebuilt"], true, "{stats:#}");
}

/// Records in the journal.
fn journaled_records(dir: &Path) -> usize {
    let text = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    text.lines()
        .filter(|l| l.starts_with("{\"t\":\"rec\""))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_load_tester_s_run_is_rebuilt_from_its_journal() {
    let stop = CancellationToken::new();
    // Records wait in the dispatcher's outbox until a load tester pulls them.
    let pipeline = in_process::pull_pipeline(&stop, "3").await;
    let dispatcher_url = pipeline.dispatcher_url;

    let reports = tempfile::tempdir().unwrap();
    let workload = reports.path().join("workload.txt");
    std::fs::write(&workload, "6 6 6 6\n").unwrap();
    let mut load_tester = procs::Process::start(
        "load-tester",
        &procs::binary("load-tester"),
        &[
            "run".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--workload".into(),
            workload.display().to_string(),
            "--images".into(),
            repo("images"),
            "--dispatcher-url".into(),
            dispatcher_url.clone(),
            "--reports-dir".into(),
            reports.path().join("out").display().to_string(),
        ],
    );
    let dir = run_dir(&reports.path().join("out")).await;
    tokio::time::sleep(Duration::from_millis(1800)).await;
    load_tester.child.start_kill().unwrap(); // SIGKILL
    let status = load_tester.child.wait().await.unwrap();
    assert!(
        !status.success(),
        "the load tester was killed, not finished"
    );
    let before = journaled_records(&dir);
    assert!(
        !dir.join("stats.json").exists(),
        "a killed run wrote no report"
    );

    // Soon after the kill: the dispatcher has finished a few more items, and still holds the
    // rest in its queue.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (output, stats) = rebuild(&dir).await;
    println!("{output}\njournal: {}", stats["journal"]);
    assert_accounted(&stats);
    assert!(output.contains("the journal has no end"), "{output}");
    assert!(stats["sent"].as_u64().unwrap() >= 6, "{stats:#}");
    assert!(
        stats["completed"].as_u64().unwrap() as usize > before,
        "records finished after the kill were collected ({before} in the journal): {stats:#}"
    );
    assert!(
        stats["missing"].as_u64().unwrap() > 0,
        "items still queued at the dispatcher have no record yet: {stats:#}"
    );
    for file in ["report.html", "timeline.csv", "throughput.png"] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }

    // Once the dispatcher is done, a second rebuild collects the rest; what the first one
    // collected (and acknowledged) comes from the journal, where it was appended.
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s: Value = client
            .get(format!("{dispatcher_url}/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if s["queueLength"] == 0 && s["inFlight"] == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, stats) = rebuild(&dir).await;
    assert_accounted(&stats);
    let n = |key: &str| stats[key].as_u64().unwrap();
    // Only a request sent in the last moments before the kill, whose /enqueue never reached
    // the dispatcher, can still be missing.
    assert!(n("missing") <= 2, "{stats:#}");
    assert_eq!(
        n("failed") + n("rejected") + n("sendErrors"),
        0,
        "{stats:#}"
    );
    assert!(n("succeeded") >= 6, "{stats:#}");
    stop.cancel();
    for task in pipeline.tasks {
        task.await.unwrap();
    }
}

//! The services as separate processes, as they run in production: start the workspace's own
//! binaries, wait for them, and read their resident memory and open file descriptors from
//! `/proc`.
//!
//! The binaries are looked up next to this package's `pipeline` binary (`target/<profile>/`).
//! `cargo test --workspace` builds every member's binaries before it runs any test; alone,
//! `cargo test -p pipeline` may not, hence the message naming the command.

// Each test file includes this module and uses a part of it.
#![allow(dead_code)]

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// A workspace binary built alongside this test (`inference`, `dispatcher`, `load-tester`).
pub fn binary(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_pipeline"))
        .parent()
        .expect("target dir")
        .to_owned();
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the workspace's binaries first (`cargo build --workspace --bins`, \
         which `cargo test --workspace` does)",
        path.display()
    );
    path
}

/// A port free at the time of asking (the OS picks it; the tiny race is acceptable in tests).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A running service process, killed when dropped.
pub struct Process {
    pub name: &'static str,
    pub child: Child,
    pub pid: u32,
}

impl Process {
    /// Starts `binary` with `args`. Its output goes to this test's terminal only when
    /// `RUST_LOG` is set (a child's output escapes the test harness's capture).
    pub fn start(name: &'static str, binary: &Path, args: &[String]) -> Process {
        let output = || match std::env::var_os("RUST_LOG") {
            Some(_) => Stdio::inherit(),
            None => Stdio::null(),
        };
        let child = Command::new(binary)
            .args(args)
            .stdout(output())
            .stderr(output())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let pid = child.id().expect("a running child has a pid");
        Process { name, child, pid }
    }

    /// Resident memory and open descriptors now; `None` once the process is gone.
    pub fn sample(&self) -> Option<Usage> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let kib = |key: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(key))?;
            line.split_whitespace().nth(1)?.parse().ok()
        };
        let fds = std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .ok()?
            .count();
        Some(Usage {
            rss_mib: kib("VmRSS:")? as f64 / 1024.0,
            fds,
        })
    }

    /// SIGTERM, then wait (at most `timeout`) for the exit status.
    pub async fn terminate(mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        // Through kill(1): sending a signal directly would need unsafe code.
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()?
            .ok()
    }
}

/// One reading of a process's resources.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub rss_mib: f64,
    pub fds: usize,
}

impl Usage {
    /// The larger of each figure: folds samples into peaks.
    pub fn max(self, other: Usage) -> Usage {
        Usage {
            rss_mib: self.rss_mib.max(other.rss_mib),
            fds: self.fds.max(other.fds),
        }
    }
}

/// Polls `url` until it answers 2xx, or panics after `timeout`.
pub async fn wait_healthy(url: &str, timeout: Duration) {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} not healthy after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The one report folder a run wrote under `reports_dir`, and its `stats.json`.
pub fn only_report(reports_dir: &Path) -> (PathBuf, serde_json::Value) {
    let mut dirs = std::fs::read_dir(reports_dir)
        .unwrap_or_else(|e| panic!("no reports in {}: {e}", reports_dir.display()))
        .map(|entry| entry.expect("readable entry").path());
    let report = dirs.next().expect("a report folder");
    assert!(dirs.next().is_none(), "more than one report folder");
    let stats = std::fs::read(report.join("stats.json")).expect("stats.json");
    let stats = serde_json::from_slice(&stats).expect("stats.json is JSON");
    (report, stats)
}

//! The report folder of a real run: PNGs that decode and show something, a `report.html`
//! whose references exist, and a page that renders in headless Chromium.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use load_tester::{FnSampler, ImagePool, RunOptions, RunOutcome, Sample, SeriesKind, Workload};
use support::{FakeDispatcher, Fate};
use tokio::net::TcpListener;

/// A short ramp whose latency grows with load, with some failures: every plot has data.
async fn run_into(reports: &Path) -> RunOutcome {
    let fate = |seq: u64| match seq {
        s if s % 29 == 4 => Fate::Reject,
        s if s % 31 == 6 => Fate::Complete {
            latency_ms: 900.0,
            outcome: "upstream_timeout".into(),
        },
        s => Fate::Complete {
            latency_ms: 20.0 + (s as f64).powf(1.4) + (s * 53 % 40) as f64,
            outcome: "ok".into(),
        },
    };
    let dispatcher = FakeDispatcher::start(Arc::new(fate), Duration::ZERO).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    dispatcher.report_to(format!(
        "http://{}/storeLatency",
        listener.local_addr().unwrap()
    ));
    let images = support::image_dir();
    let (pool, _) = ImagePool::load(images.path().to_owned(), None)
        .await
        .unwrap();
    let workload = Workload::parse("5, 15, 30 40\n30 # down\n10", "test").unwrap();
    let mut options = RunOptions::new(
        workload,
        Arc::new(pool),
        dispatcher.url.parse().unwrap(),
        reports,
    );
    options.sample_interval = Duration::from_millis(200);
    options.drain_timeout = Duration::from_secs(3);
    // An extra series of the caller's own, as the demo adds its replica count.
    let started = std::time::Instant::now();
    options.samplers.push(Arc::new(FnSampler(move || {
        let desired = 1.0 + (started.elapsed().as_secs_f64() / 1.5).floor();
        vec![Sample::new(
            "desired replicas",
            SeriesKind::Replicas,
            desired,
        )]
    })));
    load_tester::run_load_test(options, listener, |_| {}, std::future::pending())
        .await
        .unwrap()
}

fn reports_dir() -> (Option<tempfile::TempDir>, PathBuf) {
    // REPORT_OUT keeps the report for a look; otherwise a temporary folder.
    match std::env::var_os("REPORT_OUT") {
        Some(dir) => (None, PathBuf::from(dir)),
        None => {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().to_owned();
            (Some(tmp), path)
        }
    }
}

/// Number of distinct colours in a PNG, and its size.
fn colours(path: &Path) -> (usize, (u32, u32)) {
    let image = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rgb = image.to_rgb8();
    let distinct: HashSet<[u8; 3]> = rgb.pixels().map(|p| p.0).collect();
    (distinct.len(), rgb.dimensions())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_folder_has_decodable_plots_and_consistent_html() {
    let (_keep, reports) = reports_dir();
    let outcome = run_into(&reports).await;
    let report = &outcome.report;
    assert_eq!(report.dir, reports.join(&outcome.run_id));
    assert_eq!(
        report.plots.len(),
        4,
        "every plot has data: {:?}",
        report.plots
    );
    for plot in &report.plots {
        let (distinct, size) = colours(plot);
        assert_eq!(size, (1200, 560), "{}", plot.display());
        // White, text, grid and at least two series colours, plus antialiasing shades.
        assert!(
            distinct >= 8,
            "{} looks blank: {distinct} colours",
            plot.display()
        );
    }

    let html = std::fs::read_to_string(&report.html).unwrap();
    let mut referenced = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            referenced.push(rest[..rest.find('"').unwrap()].to_owned());
        }
    }
    assert!(referenced.len() >= 5, "{referenced:?}");
    for target in &referenced {
        assert!(
            !target.contains("://") && !target.starts_with('/'),
            "not relative: {target}"
        );
        assert!(report.dir.join(target).is_file(), "{target} does not exist");
    }
    // The headline numbers are on the page.
    let s = &outcome.stats;
    assert!(html.contains(&format!("<td>sent</td><td>{}</td>", s.sent)));
    assert!(html.contains("upstream_timeout") && html.contains("queue_full"));
    assert!(html.contains(&format!("{:.2}", s.latency_ms.unwrap().p99)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_renders_in_headless_chromium() {
    let chromium = Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "/usr/bin/chromium is required in CI (apt-get install chromium)"
        );
        eprintln!(
            "\n!!!!! SKIPPED report_renders_in_headless_chromium: /usr/bin/chromium is not installed !!!!!\n"
        );
        return;
    }
    let (_keep, reports) = reports_dir();
    let outcome = run_into(&reports).await;
    let profile = tempfile::tempdir().unwrap();
    let shot = reports.join(format!("{}-screenshot.png", outcome.run_id));
    let url = format!(
        "file://{}",
        outcome.report.html.canonicalize().unwrap().display()
    );
    let output = tokio::task::spawn_blocking({
        let (shot, profile) = (shot.clone(), profile.path().to_owned());
        move || {
            Command::new(chromium)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--no-first-run",
                    "--hide-scrollbars",
                ])
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg(format!("--screenshot={}", shot.display()))
                .arg("--window-size=1280,2000")
                .arg(url)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        output.status.success() && shot.is_file(),
        "chromium failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let (distinct, size) = colours(&shot);
    assert_eq!(size, (1280, 2000));
    // Text, tables and the plots' colours: a blank or error page has a handful.
    assert!(distinct > 50, "screenshot looks blank: {distinct} colours");
}

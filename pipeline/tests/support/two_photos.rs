//! A short load test of two photos (coffee.png and camera.png, alternating) for the v2 tests:
//! the run's options, the run itself, and what every such run must show.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use load_tester::target::DirectTarget;
use load_tester::{ImagePool, RunOptions, Stats, Workload};
use tokio::net::TcpListener;

/// Two seconds of 4 requests each.
const WORKLOAD: &str = "4\n4\n";

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Options for the run against `url`: the dispatcher, or with `direct` a model server.
pub async fn options(url: &str, reports: &Path, direct: Option<DirectTarget>) -> RunOptions {
    let images = reports.join("images");
    std::fs::create_dir_all(&images).unwrap();
    for name in ["camera.png", "coffee.png"] {
        std::fs::copy(root().join("images").join(name), images.join(name)).unwrap();
    }
    let (pool, _) = ImagePool::load(images, None).await.unwrap();
    let mut options = RunOptions::new(
        Workload::parse(WORKLOAD, "two-photos").unwrap(),
        Arc::new(pool),
        reqwest::Url::parse(url).unwrap(),
        reports.join("reports"),
    );
    options.drain_timeout = Duration::from_secs(60);
    options.request_timeout = Duration::from_secs(30);
    options.sample_dispatcher = false;
    options.direct = direct;
    options
}

pub async fn run(options: RunOptions) -> Stats {
    let receiver = TcpListener::bind("127.0.0.1:0").await.unwrap();
    load_tester::run_load_test(options, receiver, |_| {}, std::future::pending::<()>())
        .await
        .unwrap()
        .stats
}

/// Every request accounted for, all of them answered with the photo's label.
pub fn assert_right(s: &Stats) {
    // The run's summary, for a reader of `cargo test -- --nocapture`.
    println!(
        "{:?} {}: sent {} succeeded {} failed {} rejected {} send errors {} missing {}; \
         labels {:?}; latency p50 {:.1} ms; records by {}",
        s.target.kind,
        s.target.url,
        s.sent,
        s.succeeded,
        s.failed,
        s.rejected,
        s.send_errors,
        s.missing,
        s.labels,
        s.latency_ms.as_ref().map_or(f64::NAN, |l| l.p50),
        s.delivery.paths()
    );
    assert_eq!(s.sent, s.planned, "{s:#?}");
    assert_eq!(
        s.sent,
        s.succeeded + s.failed + s.rejected + s.send_errors,
        "{s:#?}"
    );
    assert_eq!(s.missing, 0, "{s:#?}");
    assert_eq!(s.succeeded, s.sent, "every request succeeded: {s:#?}");
    let half = s.sent / 2;
    let expected = BTreeMap::from([("espresso".to_owned(), half), ("tripod".to_owned(), half)]);
    assert_eq!(s.labels, expected, "{s:#?}");
    assert!(s.latency_ms.is_some_and(|l| l.count == s.sent), "{s:#?}");
}

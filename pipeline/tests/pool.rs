//! The replica pool against real inference replicas: what it publishes when it scales, that a
//! replica leaving the pool finishes the requests it already has, and that a replica that dies
//! by itself is noticed and replaced.

// Helpers state their expectations with unwrap too: a panic there is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

#[path = "support/replicas.rs"]
mod replicas;

use autoscaler::ScaleTarget;
use pipeline::{Error, PoolSettings, ReplicaPool};
use tokio::time::Instant;

fn settings(min: u32, max: u32) -> PoolSettings {
    replicas::pool_settings(min, max)
}

/// Waits until nothing listens on `base` any more.
async fn wait_until_closed(base: &str) {
    let addr = base.trim_start_matches("http://").to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(&addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "{base} still accepts connections"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn ready(client: &reqwest::Client, base: &str) -> bool {
    let response = client.get(format!("{base}/readyz")).send().await;
    response.is_ok_and(|r| r.status().is_success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_publishes_the_endpoint_set_and_stops_the_replicas_that_leave() {
    let client = reqwest::Client::new();
    let pool = ReplicaPool::start(settings(1, 3)).await.unwrap();
    let mut endpoints = pool.endpoints();
    let first = endpoints.borrow_and_update().clone();
    assert_eq!(first.len(), 1);
    assert_eq!(pool.current_replicas().await.unwrap(), 1);

    pool.scale_to(3).await.unwrap();
    assert!(endpoints.has_changed().unwrap());
    let three = endpoints.borrow_and_update().clone();
    assert_eq!(three.len(), 3, "{three:?}");
    assert_eq!(three[0], first[0], "the existing replica stays");
    let distinct: std::collections::BTreeSet<_> = three.iter().collect();
    assert_eq!(distinct.len(), 3, "every replica has its own port");
    // Counted at once, while the new replicas still load the model.
    assert_eq!(pool.current_replicas().await.unwrap(), 3);
    pool.wait_ready(Duration::from_secs(60)).await.unwrap();
    for url in &three {
        assert!(ready(&client, url).await, "{url} not ready");
    }

    pool.scale_to(1).await.unwrap();
    assert_eq!(
        *endpoints.borrow_and_update(),
        first,
        "the newest leave first"
    );
    assert_eq!(pool.replicas(), 1);
    for gone in &three[1..] {
        wait_until_closed(gone).await;
    }
    assert!(
        ready(&client, &first[0]).await,
        "the remaining replica still serves"
    );

    for out_of_range in [0, 4] {
        let err = pool.set_replicas(out_of_range).await.unwrap_err();
        assert!(matches!(err, Error::OutOfRange { .. }), "{err}");
    }
    let events: Vec<(u32, u32)> = pool.events().iter().map(|e| (e.from, e.to)).collect();
    assert_eq!(events, [(1, 3), (3, 1)]);

    pool.shutdown(Duration::from_secs(10)).await;
    assert!(endpoints.borrow_and_update().is_empty());
    wait_until_closed(&first[0]).await;
    assert!(matches!(
        pool.set_replicas(2).await,
        Err(Error::ShuttingDown)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_lets_in_flight_requests_finish() {
    const REQUESTS: usize = 6;
    let client = reqwest::Client::new();
    let pool = ReplicaPool::start(settings(1, 2)).await.unwrap();
    pool.scale_to(2).await.unwrap();
    pool.wait_ready(Duration::from_secs(60)).await.unwrap();
    let leaving = pool.endpoints().borrow()[1].clone();

    // One worker: one request runs, the others wait in the replica's queue.
    let image = std::fs::read(replicas::root().join("images/grace_hopper.jpg")).unwrap();
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..REQUESTS {
        let request = client
            .post(format!("{leaving}/infer"))
            .header("content-type", "image/jpeg")
            .body(image.clone());
        requests.spawn(async move { request.send().await });
    }
    // Scale down only once the replica is busy with them.
    let deadline = Instant::now() + Duration::from_secs(10);
    let busy = loop {
        let text = client
            .get(format!("{leaving}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let busy = gauge(&text, "inference_in_flight") + gauge(&text, "inference_queue_depth");
        if busy >= 2.0 {
            break busy;
        }
        assert!(
            Instant::now() < deadline,
            "the requests never reached the replica"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };

    pool.scale_to(1).await.unwrap();
    assert!(!pool.endpoints().borrow().contains(&leaving));
    let mut ok = 0;
    while let Some(joined) = requests.join_next().await {
        let response = joined.unwrap().expect("an in-flight request was cut off");
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(!body["predictions"].as_array().unwrap().is_empty());
        ok += 1;
    }
    assert_eq!(ok, REQUESTS, "{busy} were queued or running at scale-down");
    wait_until_closed(&leaving).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_pool_stops_its_replicas() {
    let pool = ReplicaPool::start(settings(2, 2)).await.unwrap();
    let urls = pool.endpoints().borrow().clone();
    assert_eq!(urls.len(), 2);
    drop(pool);
    for url in &urls {
        wait_until_closed(url).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_dies_unannounced_is_replaced() {
    let client = reqwest::Client::new();
    let pool = ReplicaPool::start(settings(2, 2)).await.unwrap();
    pool.wait_ready(Duration::from_secs(60)).await.unwrap();
    let mut endpoints = pool.endpoints();
    let before = endpoints.borrow_and_update().clone();
    let (survivor, victim) = (before[0].clone(), before[1].clone());

    let crashed_at = Instant::now();
    pool.crash(&victim).await.unwrap();
    wait_until_closed(&victim).await;
    // The pool learns of it from the replica's end alone: first the victim leaves the set...
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let now = endpoints.borrow_and_update().clone();
        if seen.last() != Some(&now) {
            seen.push(now.clone());
        }
        if now.len() == 2 && !now.contains(&victim) {
            break now;
        }
        assert!(Instant::now() < deadline, "not replaced: {seen:?}");
        let _ = tokio::time::timeout(Duration::from_secs(1), endpoints.changed()).await;
    };
    assert!(
        seen.iter()
            .any(|set| set.as_slice() == std::slice::from_ref(&survivor)),
        "the crashed replica is unpublished before its replacement comes: {seen:?}"
    );
    // ...and its replacement comes after the first restart back-off (1 s).
    assert!(crashed_at.elapsed() >= Duration::from_secs(1), "{seen:?}");
    assert_eq!(after[0], survivor);
    assert_eq!(pool.crashes(), 1);
    assert_eq!(pool.current_replicas().await.unwrap(), 2);
    pool.wait_ready(Duration::from_secs(60)).await.unwrap();
    assert!(ready(&client, &after[1]).await);
    let sizes: Vec<(u32, u32)> = pool.events().iter().map(|e| (e.from, e.to)).collect();
    assert_eq!(sizes, [(2, 1), (1, 2)]);
    pool.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_replicas_that_cannot_load_the_model_fails_with_the_reason() {
    let mut settings = settings(1, 1);
    // A file that is not an ONNX model: every replica that starts fails to load it.
    settings.inference.model = replicas::root().join("inference/model/imagenet-labels.txt");
    let pool = ReplicaPool::start(settings).await.unwrap();
    let err = pool
        .wait_ready(Duration::from_secs(60))
        .await
        .expect_err("no replica can become ready");
    match &err {
        Error::ReplicaFailed { reason, .. } => assert!(!reason.is_empty(), "{err}"),
        other => panic!("expected replica_failed, got {other:?}"),
    }
    assert!(pool.crashes() >= 1);
}

/// A gauge's value in a text exposition (0 when absent).
fn gauge(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

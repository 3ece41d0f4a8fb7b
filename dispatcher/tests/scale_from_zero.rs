//! Inference scaled to zero: with no endpoint at all, the dispatcher stays ready (with
//! `--ready-without-endpoints`), keeps queueing, spends no attempt, and drains the queue once a
//! replica appears and turns ready; every item then succeeds on its first attempt.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use dispatcher::EndpointSource;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long the items wait with no endpoint before one is published.
const EMPTY_FOR: Duration = Duration::from_millis(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_wait_for_the_first_replica_and_all_succeed() {
    let inference = ready_inference().await;
    let records = Records::default();
    let receiver = start_receiver(
        TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        records.clone(),
    );
    let (endpoints, rx) = watch::channel(Vec::<String>::new());
    let dispatcher = start_dispatcher(
        &[
            "--ready-without-endpoints",
            "--drain-rate",
            "50",
            "--report-url",
            &receiver.url("/storeLatency"),
            "--report-interval",
            "50ms",
        ],
        EndpointSource::Watch(rx),
    )
    .await;

    // Ready with no endpoint, so that a load balancer sends the work that wakes inference.
    let ready = client()
        .get(dispatcher.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), StatusCode::OK);
    for name in PHOTOS {
        assert_eq!(
            enqueue(&dispatcher, &photo(name), name).await,
            StatusCode::ACCEPTED
        );
    }
    tokio::time::sleep(EMPTY_FOR).await;
    // Still queued: nothing failed, nothing was attempted, nothing retried. The queue length
    // is what the scalers read to activate.
    let waiting = stats(&dispatcher).await;
    assert_eq!(waiting.queue_length, PHOTOS.len());
    assert!(waiting.completed_total.is_empty(), "{waiting:?}");
    let text = metrics_text(&dispatcher).await;
    assert_eq!(
        metric(&text, "dispatcher_queue_length"),
        PHOTOS.len() as f64
    );
    assert_eq!(metric(&text, "dispatcher_retries_total"), 0.0);

    // The first replica arrives (already loaded here; the demo's test covers the cold start).
    endpoints.send_replace(vec![inference.clone()]);
    let by_id = records.wait_for(PHOTOS.len()).await;
    for name in PHOTOS {
        let r = &by_id[name];
        assert_eq!(r.outcome, "ok", "{r:?}");
        assert_eq!(r.attempts, 1, "{r:?}");
        assert!(
            r.queue_wait_ms >= EMPTY_FOR.as_secs_f64() * 1e3,
            "{name} waited {} ms",
            r.queue_wait_ms
        );
    }
    assert_eq!(stats(&dispatcher).await.queue_length, 0);
    dispatcher.stop().await.expect("clean stop");
    receiver.stop().await.expect("receiver stops");
}

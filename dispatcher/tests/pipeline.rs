//! The dispatcher over the network with the real inference service and a real latency
//! receiver: end to end, retries, final 4xx, reporting while the receiver is down, shutdown.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use dispatcher::EndpointSource;
use harness_core::ApiErrorBody;
use harness_core::wire::{EndpointState, EnqueueResponse};
use tokio::net::TcpListener;
use tokio::sync::watch;

async fn receiver() -> (Running, Records) {
    let records = Records::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    (start_receiver(listener, records.clone()), records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_are_classified_and_reported_end_to_end() {
    let inference = ready_inference().await;
    let (receiver, records) = receiver().await;
    let report_url = receiver.url("/storeLatency");
    let dispatcher = start_dispatcher(
        &[
            "--drain-rate",
            "20",
            "--report-url",
            &report_url,
            "--report-interval",
            "50ms",
        ],
        EndpointSource::Static(vec![inference.clone()]),
    )
    .await;

    // Accepted at once, even before any endpoint is known to be ready.
    for name in PHOTOS {
        let response = client()
            .post(dispatcher.url("/enqueue"))
            .json(&serde_json::json!({"image": photo(name), "id": name}))
            .send()
            .await
            .expect("enqueue");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: EnqueueResponse = response.json().await.expect("202 body");
        assert_eq!(body.id, name);
    }
    // The reference harness's body shape goes the same way.
    let legacy = client()
        .post(dispatcher.url("/enqueue"))
        .json(&serde_json::json!({"message": {"imageBase64": photo("coffee.png")}}))
        .send()
        .await
        .expect("enqueue");
    assert_eq!(legacy.status(), StatusCode::ACCEPTED);
    let legacy_id = legacy.json::<EnqueueResponse>().await.expect("202 body").id;

    let by_id = records.wait_for(PHOTOS.len() + 1).await;
    let expected: BTreeSet<String> = PHOTOS
        .iter()
        .map(|s| s.to_string())
        .chain([legacy_id])
        .collect();
    assert_eq!(by_id.keys().cloned().collect::<BTreeSet<_>>(), expected);
    for (id, r) in &by_id {
        assert_eq!(r.outcome, "ok", "{id}: {r:?}");
        assert!(
            r.label.as_deref().is_some_and(|l| !l.is_empty()),
            "{id}: no label"
        );
        assert_eq!(r.attempts, 1);
        assert_eq!(r.http_status, Some(200));
        assert_eq!(r.endpoint.as_deref(), Some(inference.as_str()));
        let dispatched = r.dispatched_at_ms.expect("dispatched");
        assert!(
            r.enqueued_at_ms <= dispatched && dispatched <= r.completed_at_ms,
            "{r:?}"
        );
        let inference_ms = r.inference_ms.expect("dispatched");
        assert!(
            (r.queue_wait_ms + inference_ms - r.latency_ms).abs() < 1e-6,
            "{r:?}"
        );
    }
    // The grayscale cameraman and the cat get different top-1 labels: the images really went
    // through the model.
    assert_ne!(by_id["camera.png"].label, by_id["chelsea.png"].label);

    let stats = stats(&dispatcher).await;
    assert_eq!(
        stats.completed_total.get("ok"),
        Some(&(PHOTOS.len() as u64 + 1))
    );
    assert_eq!(stats.queue_length, 0);
    assert_eq!(stats.endpoints.len(), 1);
    assert_eq!(stats.endpoints[0].state, EndpointState::Ready);
    let metrics = metrics_text(&dispatcher).await;
    assert_eq!(
        metric(&metrics, "dispatcher_reported_total"),
        PHOTOS.len() as f64 + 1.0
    );
    dispatcher.stop().await.expect("clean stop");
    receiver.stop().await.expect("receiver stops");
}

/// Publishes only `bad`, waits until the item has failed there, then adds the real inference:
/// the retry must land on it.
async fn retried_elsewhere(bad: String, hits: std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let inference = ready_inference().await;
    let (receiver, records) = receiver().await;
    let report_url = receiver.url("/storeLatency");
    let (endpoints, rx) = watch::channel(vec![bad.clone()]);
    let dispatcher = start_dispatcher(
        &[
            "--drain-rate",
            "50",
            "--report-url",
            &report_url,
            "--report-interval",
            "50ms",
            "--eject-duration",
            "60s",
            "--retry-backoff",
            "10ms",
        ],
        EndpointSource::Watch(rx),
    )
    .await;
    assert_eq!(
        enqueue(&dispatcher, &photo("chelsea.png"), "cat").await,
        StatusCode::ACCEPTED
    );
    eventually("the first attempt on the bad pod", || async {
        hits.load(Ordering::SeqCst) == 1
    })
    .await;
    endpoints.send_replace(vec![bad.clone(), inference.clone()]);

    let by_id = records.wait_for(1).await;
    let r = &by_id["cat"];
    assert_eq!(r.outcome, "ok", "{r:?}");
    assert_eq!(r.attempts, 2);
    assert_eq!(r.endpoint.as_deref(), Some(inference.as_str()));
    assert!(r.label.is_some());
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the ejected pod got no second attempt"
    );

    let stats = stats(&dispatcher).await;
    let bad_stats = stats
        .endpoints
        .iter()
        .find(|e| e.url == bad)
        .expect("bad endpoint listed");
    assert_eq!(bad_stats.state, EndpointState::Ejected);
    assert_eq!(bad_stats.failed_total, 1);
    assert_eq!(
        metric(&metrics_text(&dispatcher).await, "dispatcher_retries_total"),
        1.0
    );
    dispatcher.stop().await.expect("clean stop");
    receiver.stop().await.expect("receiver stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_is_retried_on_another_endpoint() {
    let (bad, hits) = start_overloaded_pod().await;
    retried_elsewhere(bad, hits).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_retried_on_another_endpoint() {
    let (bad, hits) = start_dropping_pod().await;
    retried_elsewhere(bad, hits).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_from_inference_is_final_with_its_code() {
    let inference = ready_inference().await;
    // Valid base64, not an image: the dispatcher accepts it, inference refuses it.
    let not_an_image = harness_core::image_payload::encode(b"just some text, not a picture");
    let direct = client()
        .post(format!("{inference}/infer"))
        .json(&serde_json::json!({"image": not_an_image}))
        .send()
        .await
        .expect("direct /infer");
    let direct_status = direct.status();
    assert!(direct_status.is_client_error(), "{direct_status}");
    let code = direct
        .json::<ApiErrorBody>()
        .await
        .expect("error body")
        .error
        .code;

    let (receiver, records) = receiver().await;
    let report_url = receiver.url("/storeLatency");
    let dispatcher = start_dispatcher(
        &[
            "--drain-rate",
            "50",
            "--report-url",
            &report_url,
            "--report-interval",
            "50ms",
        ],
        EndpointSource::Static(vec![inference.clone()]),
    )
    .await;
    assert_eq!(
        enqueue(&dispatcher, &not_an_image, "text").await,
        StatusCode::ACCEPTED
    );
    let by_id = records.wait_for(1).await;
    let r = &by_id["text"];
    assert_eq!(r.outcome.as_str(), code);
    assert_eq!(r.attempts, 1);
    assert_eq!(r.http_status, Some(direct_status.as_u16()));
    assert!(r.label.is_none());

    let stats = stats(&dispatcher).await;
    assert_eq!(
        stats.endpoints[0].state,
        EndpointState::Ready,
        "a bad image does not eject a pod"
    );
    assert_eq!(stats.completed_total.get(&code), Some(&1));
    assert_eq!(
        metric(&metrics_text(&dispatcher).await, "dispatcher_retries_total"),
        0.0
    );
    dispatcher.stop().await.expect("clean stop");
    receiver.stop().await.expect("receiver stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_wait_in_the_outbox_while_the_receiver_is_down() {
    let inference = ready_inference().await;
    // Reserve a port for the receiver, then leave it closed.
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        probe.local_addr().expect("addr").port()
    };
    let report_url = format!("http://127.0.0.1:{port}/storeLatency");
    let dispatcher = start_dispatcher(
        &[
            "--drain-rate",
            "50",
            "--report-url",
            &report_url,
            "--report-interval",
            "50ms",
            "--report-batch-size",
            "2",
        ],
        EndpointSource::Static(vec![inference]),
    )
    .await;
    let ids: BTreeSet<String> = PHOTOS.iter().map(|p| format!("late-{p}")).collect();
    for (name, id) in PHOTOS.iter().zip(&ids) {
        assert_eq!(
            enqueue(&dispatcher, &photo(name), id).await,
            StatusCode::ACCEPTED
        );
    }
    // Every item finishes although nobody takes the records: the drain does not wait for them.
    eventually("items finished, delivery failing", || async {
        let metrics = metrics_text(&dispatcher).await;
        stats(&dispatcher)
            .await
            .completed_total
            .values()
            .sum::<u64>()
            == PHOTOS.len() as u64
            && metric(&metrics, "dispatcher_report_failures_total") >= 1.0
    })
    .await;
    let metrics = metrics_text(&dispatcher).await;
    assert_eq!(
        metric(&metrics, "dispatcher_outbox_length"),
        PHOTOS.len() as f64
    );
    for reason in ["capacity", "retention", "refused", "shutdown"] {
        let name = format!("dispatcher_report_dropped_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&metrics, &name), 0.0, "{name}");
    }

    // The receiver comes up on the same port: everything arrives, late, once.
    let records = Records::default();
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("rebind the port");
    let receiver = start_receiver(listener, records.clone());
    let by_id = records.wait_for(PHOTOS.len()).await;
    assert_eq!(by_id.keys().cloned().collect::<BTreeSet<_>>(), ids);
    assert!(by_id.values().all(|r| r.outcome == "ok"));
    eventually("outbox empty", || async {
        metric(&metrics_text(&dispatcher).await, "dispatcher_outbox_length") == 0.0
    })
    .await;
    dispatcher.stop().await.expect("clean stop");
    receiver.stop().await.expect("receiver stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_reports_every_item_and_marks_the_rest_shutdown() {
    let inference = ready_inference().await;
    let (receiver, records) = receiver().await;
    let report_url = receiver.url("/storeLatency");
    let mut dispatcher = start_dispatcher(
        &[
            "--drain-rate",
            "1",
            "--shutdown-timeout",
            "1500ms",
            "--report-url",
            &report_url,
            "--report-interval",
            "50ms",
        ],
        EndpointSource::Static(vec![inference]),
    )
    .await;
    let ids: Vec<String> = (0..8).map(|i| format!("item-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let status = enqueue(&dispatcher, &photo(PHOTOS[i % PHOTOS.len()]), id).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    // Let the first item reach the pod, then SIGTERM.
    eventually("first dispatch", || async {
        stats(&dispatcher).await.queue_length < ids.len()
    })
    .await;
    dispatcher.begin_shutdown();
    eventually("stopped accepting", || async {
        !stats(&dispatcher).await.accepting
    })
    .await;
    let refused = client()
        .post(dispatcher.url("/enqueue"))
        .json(&serde_json::json!({"image": photo("flower.jpg")}))
        .send()
        .await
        .expect("the server still answers while draining");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let code = refused
        .json::<ApiErrorBody>()
        .await
        .expect("error body")
        .error
        .code;
    assert_eq!(code, "shutting_down");

    dispatcher.stop().await.expect("clean stop");
    // Every accepted item has exactly one record, delivered before `run` returned.
    let by_id = records.wait_for(0).await;
    assert_eq!(by_id.keys().cloned().collect::<Vec<_>>(), ids);
    let ok = by_id.values().filter(|r| r.outcome == "ok").count();
    let shutdown: Vec<_> = by_id.values().filter(|r| r.outcome == "shutdown").collect();
    assert_eq!(ok + shutdown.len(), ids.len(), "{by_id:?}");
    assert!(ok >= 1, "the drain went on after SIGTERM");
    // At 1/s during 1.5 s, at most 3 items can have left the queue.
    assert!(shutdown.len() >= ids.len() - 3, "{by_id:?}");
    assert!(
        shutdown
            .iter()
            .any(|r| r.dispatched_at_ms.is_none() && r.attempts == 0)
    );
    receiver.stop().await.expect("receiver stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_the_whole_queue_when_time_allows() {
    let inference = ready_inference().await;
    let (receiver, records) = receiver().await;
    let report_url = receiver.url("/storeLatency");
    let dispatcher = start_dispatcher(
        &[
            "--drain-rate",
            "50",
            "--report-url",
            &report_url,
            "--report-interval",
            "1h",
        ],
        EndpointSource::Static(vec![inference]),
    )
    .await;
    for (i, name) in PHOTOS.iter().take(3).enumerate() {
        assert_eq!(
            enqueue(&dispatcher, &photo(name), &i.to_string()).await,
            StatusCode::ACCEPTED
        );
    }
    // Shut down at once: the queue is drained first, and the hour-long report interval does
    // not hold back the final flush.
    let started = tokio::time::Instant::now();
    dispatcher.stop().await.expect("clean stop");
    assert!(started.elapsed() < Duration::from_secs(30));
    let by_id = records.wait_for(3).await;
    assert_eq!(by_id.len(), 3);
    assert!(by_id.values().all(|r| r.outcome == "ok"), "{by_id:?}");
    receiver.stop().await.expect("receiver stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_names_resolve_to_endpoints() {
    let inference = ready_inference().await;
    let port = inference.rsplit(':').next().expect("port");
    let dns = format!("localhost:{port}");
    let dispatcher = start_dispatcher_from_config(&[
        "--inference-dns",
        &dns,
        "--dns-refresh",
        "100ms",
        "--report-url",
        "",
    ])
    .await;
    // `localhost` may also resolve to ::1, where nothing listens: that endpoint stays not ready.
    eventually("the IPv4 address ready", || async {
        stats(&dispatcher)
            .await
            .endpoints
            .iter()
            .any(|e| e.url == inference && e.state == EndpointState::Ready)
    })
    .await;
    let ready = client()
        .get(dispatcher.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), StatusCode::OK);
    dispatcher.stop().await.expect("clean stop");
}

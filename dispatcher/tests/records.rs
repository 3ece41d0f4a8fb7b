//! The pull path over the network, with the real inference service: `GET /records` hands a
//! run its records (and only its own), a page is kept until acknowledged, push and pull
//! together deliver every record exactly once, records can still be collected while the dispatcher stops, and
//! bad queries get the project's error shape.

mod common;

use std::collections::BTreeSet;

use axum::http::StatusCode;
use common::*;
use dispatcher::EndpointSource;
use harness_core::ApiErrorBody;
use harness_core::wire::RecordsPage;
use tokio::net::TcpListener;

async fn pull(dispatcher: &Running, run: &str, after: u64, wait: &str) -> RecordsPage {
    let url = format!("/records?runId={run}&after={after}&wait={wait}&limit=4");
    let response = client()
        .get(dispatcher.url(&url))
        .send()
        .await
        .expect("GET /records");
    assert_eq!(response.status(), StatusCode::OK);
    let page: RecordsPage = response.json().await.expect("a page");
    assert_eq!(page.instance_id.len(), 32, "every page names the instance");
    page
}

/// Pulls until `n` distinct records of `run` have come; returns their ids and the cursor.
async fn pull_all(dispatcher: &Running, run: &str, n: usize) -> (BTreeSet<String>, u64) {
    let mut ids = BTreeSet::new();
    let mut after = 0;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while ids.len() < n {
        assert!(tokio::time::Instant::now() < deadline, "only {ids:?} came");
        let page = pull(dispatcher, run, after, "5s").await;
        assert!(page.records.len() <= 4, "limit ignored");
        for record in page.records {
            assert!(record.id.starts_with(&format!("{run}-")), "{}", record.id);
            assert_eq!(record.outcome, "ok", "{record:?}");
            ids.insert(record.id);
        }
        after = page.cursor;
    }
    (ids, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_pulls_its_own_records_and_acknowledges_them() {
    let inference = ready_inference().await;
    // Push off: the records wait for their puller.
    let dispatcher = start_dispatcher(
        &["--drain-rate", "50", "--report-url", ""],
        EndpointSource::Static(vec![inference]),
    )
    .await;
    let mine: BTreeSet<String> = (1..=PHOTOS.len()).map(|i| format!("runa-{i}")).collect();
    for (name, id) in PHOTOS.iter().zip(&mine) {
        assert_eq!(
            enqueue(&dispatcher, &photo(name), id).await,
            StatusCode::ACCEPTED
        );
    }
    assert_eq!(
        enqueue(&dispatcher, &photo(PHOTOS[0]), "runb-1").await,
        StatusCode::ACCEPTED
    );
    let (ids, cursor) = pull_all(&dispatcher, "runa", mine.len()).await;
    assert_eq!(ids, mine);
    // The last page is not acknowledged yet: the dispatcher still holds it.
    eventually("every item finished", || async {
        stats(&dispatcher)
            .await
            .completed_total
            .values()
            .sum::<u64>()
            == 7
    })
    .await;
    let metrics = metrics_text(&dispatcher).await;
    assert!(metric(&metrics, "dispatcher_outbox_length") >= 2.0);
    // Acknowledged: only run b's record is left, and nothing was dropped.
    let last = pull(&dispatcher, "runa", cursor, "0s").await;
    assert!(last.records.is_empty());
    assert_eq!(last.dropped.total(), 0);
    let metrics = metrics_text(&dispatcher).await;
    assert_eq!(metric(&metrics, "dispatcher_outbox_length"), 1.0);
    let (other, _) = pull_all(&dispatcher, "runb", 1).await;
    assert_eq!(other, BTreeSet::from(["runb-1".to_owned()]));
    dispatcher.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_together_deliver_each_record_once() {
    let inference = ready_inference().await;
    let records = Records::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let receiver = start_receiver(listener, records.clone());
    let dispatcher = start_dispatcher(
        &[
            "--drain-rate",
            "50",
            "--report-url",
            &receiver.url("/storeLatency"),
            "--report-interval",
            "20ms",
            "--report-batch-size",
            "1",
        ],
        EndpointSource::Static(vec![inference]),
    )
    .await;
    let ids: BTreeSet<String> = (1..=12).map(|i| format!("both-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let image = photo(PHOTOS[i % PHOTOS.len()]);
        assert_eq!(enqueue(&dispatcher, &image, id).await, StatusCode::ACCEPTED);
    }
    // Pull while the reporter pushes, until every record has come one way or the other.
    let mut pulled = BTreeSet::new();
    let mut after = 0;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let snapshot = records.snapshot();
        let pushed: BTreeSet<String> = snapshot.iter().map(|r| r.id.clone()).collect();
        assert_eq!(pushed.len(), snapshot.len(), "a record pushed twice");
        if pushed.len() + pulled.len() >= ids.len() {
            assert!(
                pushed.is_disjoint(&pulled),
                "both ways: {pushed:?} {pulled:?}"
            );
            let all: BTreeSet<String> = pushed.union(&pulled).cloned().collect();
            assert_eq!(all, ids);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "records missing");
        let page = pull(&dispatcher, "both", after, "200ms").await;
        after = page.cursor;
        pulled.extend(page.records.into_iter().map(|r| r.id));
    }
    pull(&dispatcher, "both", after, "0s").await;
    let metrics = metrics_text(&dispatcher).await;
    assert_eq!(metric(&metrics, "dispatcher_outbox_length"), 0.0);
    dispatcher.stop().await.expect("clean stop");
    receiver.stop().await.expect("receiver stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_can_still_be_pulled_while_the_dispatcher_stops() {
    let inference = ready_inference().await;
    let mut dispatcher = start_dispatcher(
        &[
            "--drain-rate",
            "50",
            "--report-url",
            "",
            "--report-flush-timeout",
            "30s",
        ],
        EndpointSource::Static(vec![inference]),
    )
    .await;
    assert_eq!(
        enqueue(&dispatcher, &photo(PHOTOS[0]), "late-1").await,
        StatusCode::ACCEPTED
    );
    eventually("the item finished", || async {
        stats(&dispatcher)
            .await
            .completed_total
            .values()
            .sum::<u64>()
            == 1
    })
    .await;
    // SIGTERM: the drain is over at once, and the outbox waits for its puller.
    dispatcher.begin_shutdown();
    let page = pull(&dispatcher, "late", 0, "5s").await;
    assert_eq!(page.records.len(), 1);
    assert!(
        pull(&dispatcher, "late", page.cursor, "0s")
            .await
            .records
            .is_empty()
    );
    // Acknowledged, the outbox is empty and the dispatcher stops well before its flush timeout.
    tokio::time::timeout(std::time::Duration::from_secs(10), dispatcher.stop())
        .await
        .expect("stopped once the records were collected")
        .expect("clean stop");
}

#[tokio::test]
async fn bad_queries_get_the_error_shape() {
    let dispatcher = start_dispatcher(&["--report-url", ""], EndpointSource::Static(vec![])).await;
    for (query, says) in [
        ("", "runId"),
        ("?runId=", "runId must not be empty"),
        ("?runId=a&after=x", "after"),
        ("?runId=a&limit=0", "limit must be 1 to 10000"),
        ("?runId=a&wait=1h", "wait must be at most"),
        ("?runId=a&wait=soon", "wait:"),
        ("?runId=a&cursor=3", "unknown field"),
    ] {
        let response = client()
            .get(dispatcher.url(&format!("/records{query}")))
            .send()
            .await
            .expect("GET /records");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: ApiErrorBody = response.json().await.expect("error body");
        assert_eq!(body.error.code, "invalid_query", "{query}");
        assert!(
            body.error.message.contains(says),
            "{query}: {}",
            body.error.message
        );
    }
    dispatcher.stop().await.expect("clean stop");
}

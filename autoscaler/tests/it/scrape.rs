//! The direct-scrape source against real HTTP servers serving the text format: arrival rate
//! from counter deltas over the injected clock, utilisation and service rate from the replicas
//! published on a watch channel, counter resets, replicas coming and going.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use autoscaler::{InferenceTargets, ScrapeSource, TelemetryError, TelemetrySource};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

/// Counters the test moves; values in thousandths for the busy seconds.
#[derive(Default)]
struct Counters {
    enqueued: AtomicU64,
    queue: AtomicU64,
    dispatcher_down: AtomicU64,
    busy_ms: [AtomicU64; 2],
    ok: [AtomicU64; 2],
}

async fn dispatcher(State(c): State<Arc<Counters>>) -> axum::response::Response {
    if c.dispatcher_down.load(Ordering::Relaxed) == 1 {
        return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response();
    }
    format!(
        "# TYPE dispatcher_enqueued_total counter\n\
         dispatcher_enqueued_total {}\n\
         dispatcher_queue_length {}\n\
         dispatcher_in_flight 3\n\
         dispatcher_completed_total{{outcome=\"ok\"}} 12\n",
        c.enqueued.load(Ordering::Relaxed),
        c.queue.load(Ordering::Relaxed)
    )
    .into_response()
}

fn pod(i: usize) -> impl Fn(State<Arc<Counters>>) -> std::future::Ready<String> + Clone {
    move |State(c): State<Arc<Counters>>| {
        std::future::ready(format!(
            "inference_worker_busy_seconds_total {}\n\
             inference_workers 2\n\
             inference_requests_total{{outcome=\"ok\"}} {}\n\
             inference_requests_total{{outcome=\"invalid_base64\"}} 999\n",
            c.busy_ms[i].load(Ordering::Relaxed) as f64 / 1000.0,
            c.ok[i].load(Ordering::Relaxed)
        ))
    }
}

async fn server(c: Arc<Counters>) -> String {
    let app = Router::new()
        .route("/metrics", get(dispatcher))
        .route("/p0/metrics", get(pod(0)))
        .route("/p1/metrics", get(pod(1)))
        .with_state(c);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn rates_come_from_counter_deltas_over_the_injected_clock() {
    let c = Arc::new(Counters::default());
    let base = server(c.clone()).await;
    let (pods_tx, pods_rx) = watch::channel(vec![format!("{base}/p0"), format!("{base}/p1/")]);
    let mut source = ScrapeSource::new(
        format!("{base}/metrics"),
        InferenceTargets::Watch(pods_rx),
        Duration::from_secs(5),
    )
    .unwrap();
    let t0 = Instant::now();
    c.enqueued.store(100, Ordering::Relaxed);
    let first = source.read(t0).await.unwrap_err();
    assert!(matches!(first, TelemetryError::WarmingUp(_)), "{first}");

    // 10 s later: 300 more requests; pods busy 10 s and 5 s of 2 × 10 worker-seconds each.
    c.enqueued.store(400, Ordering::Relaxed);
    c.queue.store(7, Ordering::Relaxed);
    c.busy_ms[0].store(10_000, Ordering::Relaxed);
    c.busy_ms[1].store(5_000, Ordering::Relaxed);
    c.ok[0].store(100, Ordering::Relaxed);
    c.ok[1].store(50, Ordering::Relaxed);
    let t = source.read(t0 + Duration::from_secs(10)).await.unwrap();
    assert_eq!(t.arrival_rate, Some(30.0));
    assert_eq!((t.queue_length, t.in_flight), (Some(7.0), Some(3.0)));
    assert_eq!(t.ready_replicas, Some(2.0));
    assert_eq!(t.utilisation, Some(15.0 / 40.0));
    // 150 ok requests in 15 busy worker-seconds, 2 workers per replica: 20 requests/s each.
    assert_eq!(t.service_rate_per_pod, Some(20.0));

    // The dispatcher restarted: its counter is back at 50, which counts from zero.
    c.enqueued.store(50, Ordering::Relaxed);
    let t = source.read(t0 + Duration::from_secs(20)).await.unwrap();
    assert_eq!(t.arrival_rate, Some(5.0));
    assert_eq!(t.utilisation, Some(0.0), "no busy time in the last 10 s");

    // A replica leaves the pool.
    pods_tx.send_replace(vec![format!("{base}/p0")]);
    let t = source.read(t0 + Duration::from_secs(30)).await.unwrap();
    assert_eq!(t.ready_replicas, Some(1.0));

    // A replica that does not answer is not ready.
    pods_tx.send_replace(vec![format!("{base}/p0"), format!("{base}/gone")]);
    let t = source.read(t0 + Duration::from_secs(40)).await.unwrap();
    assert_eq!(t.ready_replicas, Some(1.0));

    // The dispatcher failing is an error of the whole read.
    c.dispatcher_down.store(1, Ordering::Relaxed);
    let err = source.read(t0 + Duration::from_secs(50)).await.unwrap_err();
    assert!(
        matches!(err, TelemetryError::Status { status: 500, .. }),
        "{err}"
    );
}

//! An in-process stand-in for the dispatcher that records exactly what arrived at `/enqueue`
//! and reports real `LatencyRecord`s to the load tester's `/storeLatency`, the way the real
//! dispatcher does (batched arrays, plus single objects).

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use harness_core::wire::{
    DispatcherStats, EndpointState, EndpointStats, EnqueueRequest, EnqueueResponse, LatencyRecord,
    now_unix_millis,
};
use tokio::net::TcpListener;

/// One request as the target saw it.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub id: String,
    pub seq: u64,
    pub at_unix_ms: f64,
    pub image: String,
}

/// What the target does with request `seq`.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    /// 503 `queue_full` at enqueue.
    Reject,
    /// Accepted, and a record with this latency and outcome is reported.
    Complete { latency_ms: f64, outcome: String },
    /// Accepted, never reported.
    Lose,
}

pub type FateFn = Arc<dyn Fn(u64) -> Fate + Send + Sync>;

#[derive(Clone)]
struct Target {
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    fate: FateFn,
    report_url: Arc<Mutex<Option<String>>>,
    outbox: Arc<Mutex<Vec<LatencyRecord>>>,
    duplicates: Arc<Mutex<HashSet<u64>>>,
    answer_delay: Duration,
    client: reqwest::Client,
}

pub struct FakeDispatcher {
    pub url: String,
    pub addr: SocketAddr,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    report_url: Arc<Mutex<Option<String>>>,
    duplicates: Arc<Mutex<HashSet<u64>>>,
}

impl FakeDispatcher {
    /// Starts the target; records go to `report_url` once set with [`FakeDispatcher::report_to`].
    pub async fn start(fate: FateFn, answer_delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target = Target {
            arrivals: Arc::default(),
            fate,
            report_url: Arc::default(),
            outbox: Arc::default(),
            duplicates: Arc::default(),
            answer_delay,
            client: reqwest::Client::new(),
        };
        let app = Router::new()
            .route("/enqueue", post(enqueue))
            .route("/stats", get(stats))
            .route("/healthz", get(|| async { "ok" }))
            .with_state(target.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        tokio::spawn(flush_loop(target.clone()));
        Self {
            url: format!("http://{addr}"),
            addr,
            arrivals: target.arrivals,
            report_url: target.report_url,
            duplicates: target.duplicates,
        }
    }

    pub fn report_to(&self, url: String) {
        *self.report_url.lock().unwrap() = Some(url);
    }

    /// Report the record of `seq` twice.
    pub fn duplicate(&self, seq: u64) {
        self.duplicates.lock().unwrap().insert(seq);
    }

    pub fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.lock().unwrap().clone()
    }
}

async fn enqueue(State(t): State<Target>, Json(body): Json<EnqueueRequest>) -> Response {
    let at_unix_ms = now_unix_millis();
    let (image, id) = body.into_parts().unwrap();
    let id = id.expect("the load tester always sends an id");
    let seq: u64 = id.rsplit_once('-').unwrap().1.parse().unwrap();
    let queue_length = {
        let mut arrivals = t.arrivals.lock().unwrap();
        arrivals.push(Arrival {
            id: id.clone(),
            seq,
            at_unix_ms,
            image,
        });
        arrivals.len()
    };
    if !t.answer_delay.is_zero() {
        tokio::time::sleep(t.answer_delay).await;
    }
    match (t.fate)(seq) {
        Fate::Reject => {
            harness_core::api_error::overloaded_response("queue_full", "queue is full", 1)
        }
        Fate::Lose => accepted(id, queue_length),
        Fate::Complete {
            latency_ms,
            outcome,
        } => {
            let ok = outcome == "ok";
            let record = LatencyRecord {
                id: id.clone(),
                enqueued_at_ms: at_unix_ms,
                dispatched_at_ms: Some(at_unix_ms + latency_ms * 0.25),
                completed_at_ms: at_unix_ms + latency_ms,
                queue_wait_ms: latency_ms * 0.25,
                inference_ms: Some(latency_ms * 0.75),
                latency_ms,
                attempts: 1,
                outcome: outcome.into(),
                http_status: Some(if ok { 200 } else { 504 }),
                label: ok.then(|| "espresso".to_owned()),
                endpoint: Some("http://127.0.0.1:9".into()),
            };
            let mut outbox = t.outbox.lock().unwrap();
            if t.duplicates.lock().unwrap().contains(&seq) {
                outbox.push(record.clone());
            }
            outbox.push(record);
            accepted(id, queue_length)
        }
    }
}

fn accepted(id: String, queue_length: usize) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(EnqueueResponse {
            id,
            queue_length,
            instance_id: "fake".into(),
        }),
    )
        .into_response()
}

/// Sends the outbox every 100 ms: arrays normally, a lone record as a single object.
async fn flush_loop(t: Target) {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Some(url) = t.report_url.lock().unwrap().clone() else {
            continue;
        };
        let batch: Vec<LatencyRecord> = std::mem::take(&mut *t.outbox.lock().unwrap());
        let request = match batch.len() {
            0 => continue,
            1 => t.client.post(&url).json(&batch[0]),
            _ => t.client.post(&url).json(&batch),
        };
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }
}

async fn stats(State(t): State<Target>) -> Json<DispatcherStats> {
    let arrived = t.arrivals.lock().unwrap().len();
    Json(DispatcherStats {
        instance_id: "fake".into(),
        queue_length: arrived % 7,
        queue_bytes: 0,
        queue_capacity: 10_000,
        queue_max_bytes: 1 << 28,
        drain_rate: 2.0,
        max_in_flight_per_endpoint: 4,
        accepting: true,
        enqueued_total: arrived as u64,
        rejected_total: Default::default(),
        completed_total: Default::default(),
        in_flight: 0,
        endpoints: (0..2)
            .map(|i| EndpointStats {
                url: format!("http://127.0.0.1:{}", 9000 + i),
                state: EndpointState::Ready,
                in_flight: 0,
                completed_total: 0,
                failed_total: 0,
            })
            .collect(),
    })
}

/// A folder with a few small generated images.
pub fn image_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (i, name) in ["a.png", "b.jpg", "c.png"].iter().enumerate() {
        image::RgbImage::from_fn(8, 8, |x, y| {
            image::Rgb([x as u8 * 30, y as u8 * 30, i as u8 * 80])
        })
        .save(dir.path().join(name))
        .unwrap();
    }
    dir
}

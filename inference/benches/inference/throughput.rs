//! End-to-end `POST /infer` throughput at saturation, through an in-process server on
//! 127.0.0.1, with closed-loop clients sharing one counter of requests to send.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use harness_core::wire::{InferResponse, StageTimings};
use inference::{AppState, Classifier};

use crate::samples::Samples;
use crate::{Photo, config};

/// What one saturation run measured.
pub struct Throughput {
    pub workers: usize,
    pub requests: usize,
    pub per_second: f64,
    pub failures: usize,
    /// The service's own decode, preprocess and model times, from the responses.
    pub service: [Samples; 3],
}

/// Where the clients send, and what.
#[derive(Clone)]
struct Target {
    client: reqwest::Client,
    url: String,
    bodies: Arc<Vec<Bytes>>,
}

/// Saturates an in-process server with `workers` workers: 2 × workers + 2 clients in closed
/// loops, so the queue never runs dry.
pub async fn bench_throughput(
    classifier: Arc<Classifier>,
    photos: &[Photo],
    workers: usize,
    requests: usize,
) -> anyhow::Result<Throughput> {
    let config = config(&["--workers", &workers.to_string(), "--queue-capacity", "64"])?;
    let state = AppState::with_classifier(&config, classifier)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let target = Target {
        client: reqwest::Client::new(),
        url: format!("http://{}/infer", listener.local_addr()?),
        bodies: Arc::new(json_bodies(photos)),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(inference::serve(listener, state, async {
        let _ = stopped.await;
    }));
    let clients = 2 * workers + 2;
    saturate(&target, clients, 2 * workers).await; // warm-up: connections, allocator, caches
    let started = Instant::now();
    let (timings, failures) = saturate(&target, clients, requests).await;
    let elapsed = started.elapsed();
    let _ = stop.send(());
    server.await??;
    Ok(Throughput {
        workers,
        requests,
        per_second: requests as f64 / elapsed.as_secs_f64(),
        failures,
        service: service_times(timings),
    })
}

/// The `{"image": "<base64>"}` body of each photo.
fn json_bodies(photos: &[Photo]) -> Vec<Bytes> {
    photos
        .iter()
        .map(|p| {
            let image = harness_core::image_payload::encode(&p.bytes);
            Bytes::from(serde_json::json!({ "image": image }).to_string())
        })
        .collect()
}

/// Sends `count` requests from `clients` concurrent closed loops; returns the stage timings of
/// the successes and the number of failures.
async fn saturate(target: &Target, clients: usize, count: usize) -> (Vec<StageTimings>, usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(client_loop(target.clone(), Arc::clone(&next), count)))
        .collect();
    let mut all = Vec::new();
    let mut failures = 0;
    for task in tasks {
        let (t, f) = task.await.unwrap_or_default();
        all.extend(t);
        failures += f;
    }
    (all, failures)
}

/// One client: takes the next request number until `count` are taken, one request at a time.
async fn client_loop(
    target: Target,
    next: Arc<AtomicUsize>,
    count: usize,
) -> (Vec<StageTimings>, usize) {
    let mut timings = Vec::new();
    let mut failures = 0;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= count {
            break;
        }
        let response = target
            .client
            .post(&target.url)
            .header("content-type", "application/json")
            .body(target.bodies[i % target.bodies.len()].clone())
            .send()
            .await;
        match response {
            Ok(r) if r.status().is_success() => {
                if let Ok(body) = r.json::<InferResponse>().await {
                    timings.push(body.timing_ms);
                }
            }
            _ => failures += 1,
        }
    }
    (timings, failures)
}

/// Decode, preprocess and model times as the service reported them.
fn service_times(timings: Vec<StageTimings>) -> [Samples; 3] {
    let mut service: [Samples; 3] = Default::default();
    for t in timings {
        service[0].0.push(t.decode);
        service[1].0.push(t.preprocess);
        service[2].0.push(t.inference);
    }
    service
}

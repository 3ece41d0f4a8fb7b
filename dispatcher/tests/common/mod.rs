//! Real components for the network tests: the inference service (one per test binary, model
//! loaded once), a `/storeLatency` receiver, and the dispatcher itself, all on `127.0.0.1:0`.
//! The only stand-ins are upstreams whose failure IS the behaviour under test (a pod that
//! answers 503, a pod that drops connections).

#![allow(dead_code)] // each test file uses a different subset

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use clap::Parser;
use dispatcher::{Config, EndpointSource};
use harness_core::wire::{DispatcherStats, EnqueueRequest, LatencyBatch, LatencyRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

/// How long a test waits for something that should happen within a second or two.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A server task with a shutdown trigger.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Triggers shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Triggers shutdown and waits for `run` to return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.begin_shutdown();
        self.task.await?
    }
}

/// The base URL of a real inference service, started once per test binary on its own runtime
/// (tests each have their own runtime; the model loads once).
pub fn inference_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                let addr = listener.local_addr().expect("addr");
                tx.send(format!("http://{addr}")).expect("test waits");
                let model_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../inference/model");
                let config = inference::Config::try_parse_from([
                    "inference".to_owned(),
                    format!("--model={model_dir}/efficientnet-lite0.onnx"),
                    format!("--labels={model_dir}/imagenet-labels.txt"),
                ])
                .expect("inference config");
                inference::run(listener, config, std::future::pending())
                    .await
                    .expect("inference runs");
            });
        });
        rx.recv().expect("inference thread started")
    })
}

/// Waits until the real inference service has loaded its model.
pub async fn ready_inference() -> String {
    let url = inference_url().to_owned();
    let client = client();
    eventually("inference ready", || async {
        matches!(client.get(format!("{url}/readyz")).send().await, Ok(r) if r.status() == StatusCode::OK)
    })
    .await;
    url
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// Polls `check` every 20 ms until it holds; panics after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts a dispatcher with `args` (the flags of `dispatcher --help`) and `source`.
pub async fn start_dispatcher(args: &[&str], source: EndpointSource) -> Running {
    let config = dispatcher_config(args);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(dispatcher::run_with_endpoints(
        listener,
        config,
        source,
        async move {
            let _ = stopped.await;
        },
    ));
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

pub fn dispatcher_config(args: &[&str]) -> Config {
    Config::try_parse_from(std::iter::once("dispatcher").chain(args.iter().copied()))
        .expect("dispatcher arguments")
}

/// Starts `dispatcher::run` (endpoints from the configuration).
pub async fn start_dispatcher_from_config(args: &[&str]) -> Running {
    let config = dispatcher_config(args);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(dispatcher::run(listener, config, async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

pub async fn stats(dispatcher: &Running) -> DispatcherStats {
    client()
        .get(dispatcher.url("/stats"))
        .send()
        .await
        .expect("GET /stats")
        .json()
        .await
        .expect("stats JSON")
}

pub async fn metrics_text(dispatcher: &Running) -> String {
    client()
        .get(dispatcher.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text")
}

/// The value of an unlabelled metric line (`name value`).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

/// Enqueues `image` (base64) with `id`; returns the status.
pub async fn enqueue(dispatcher: &Running, image: &str, id: &str) -> StatusCode {
    client()
        .post(dispatcher.url("/enqueue"))
        .json(&EnqueueRequest::new(image, Some(id.to_owned())))
        .send()
        .await
        .expect("POST /enqueue")
        .status()
}

/// A photo from the workspace's pool, base64.
pub fn photo(name: &str) -> String {
    let path = format!("{}/../images/{name}", env!("CARGO_MANIFEST_DIR"));
    harness_core::image_payload::encode(&std::fs::read(&path).expect("photo"))
}

pub const PHOTOS: [&str; 6] = [
    "chelsea.png",
    "china.jpg",
    "flower.jpg",
    "grace_hopper.jpg",
    "rocket.jpg",
    "camera.png",
];

// ------------------------------------------------------------------ latency receiver

/// Latency records received, shared with the receiver's handler.
#[derive(Clone, Default)]
pub struct Records {
    inner: Arc<(Mutex<Vec<LatencyRecord>>, Notify)>,
}

impl Records {
    pub fn snapshot(&self) -> Vec<LatencyRecord> {
        self.inner.0.lock().expect("not poisoned").clone()
    }

    /// Waits until at least `n` records arrived; returns them by id (panics on a duplicate).
    pub async fn wait_for(&self, n: usize) -> BTreeMap<String, LatencyRecord> {
        eventually("latency records", || async { self.snapshot().len() >= n }).await;
        let mut by_id = BTreeMap::new();
        for record in self.snapshot() {
            let id = record.id.clone();
            assert!(
                by_id.insert(id.clone(), record).is_none(),
                "record {id} delivered twice"
            );
        }
        by_id
    }
}

async fn store_latency(
    State(records): State<Records>,
    axum::Json(batch): axum::Json<LatencyBatch>,
) -> StatusCode {
    records
        .inner
        .0
        .lock()
        .expect("not poisoned")
        .extend(batch.into_vec());
    records.inner.1.notify_waiters();
    StatusCode::OK
}

/// A `/storeLatency` receiver on `listener`, like the load tester's.
pub fn start_receiver(listener: TcpListener, records: Records) -> Running {
    let addr = listener.local_addr().expect("addr");
    let app = Router::new()
        .route("/storeLatency", post(store_latency))
        .with_state(records);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await?;
        Ok(())
    });
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

// ------------------------------------------------------------------ failing upstreams

/// An inference pod that is ready but answers every `/infer` with 503 (its queue is full).
pub async fn start_overloaded_pod() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/readyz", get(|| async { "ready" }))
        .route(
            "/infer",
            post(|State(hits): State<Arc<AtomicUsize>>| async move {
                hits.fetch_add(1, Ordering::SeqCst);
                harness_core::api_error::overloaded_response("overloaded", "queue full", 1)
            }),
        )
        .with_state(hits.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

/// A pod whose `/readyz` says 200 but which closes the connection on every other request
/// without answering (a crash mid-request).
pub async fn start_dropping_pod() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut head = [0u8; 64];
                let Ok(n) = socket.read(&mut head).await else {
                    return;
                };
                if head[..n].starts_with(b"GET /readyz") {
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                } else {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                // Dropping the socket closes the connection.
            });
        }
    });
    (url, hits)
}

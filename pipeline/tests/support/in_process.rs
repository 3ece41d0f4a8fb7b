//! The real services as servers inside the test process: each bound to `127.0.0.1:0` and run
//! until the test's stop token, addressed by its base URL.

use std::future::Future;
use std::path::Path;

use clap::Parser;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// `path` inside the repository.
pub fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
        .display()
        .to_string()
}

/// Binds `127.0.0.1:0` and serves `run` on it until `stop`: its base URL and its task.
pub async fn serve<F, Fut>(stop: &CancellationToken, run: F) -> (String, JoinHandle<()>)
where
    F: FnOnce(TcpListener, tokio_util::sync::WaitForCancellationFutureOwned) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = run(listener, stop.clone().cancelled_owned());
    (url, tokio::spawn(async move { task.await.unwrap() }))
}

/// The inference server with the shipped model and labels, its other settings the defaults.
pub fn inference_config() -> inference::Config {
    inference::Config::try_parse_from([
        "inference".to_owned(),
        "--model".to_owned(),
        repo("inference/model/efficientnet-lite0.onnx"),
        "--labels".to_owned(),
        repo("inference/model/imagenet-labels.txt"),
    ])
    .unwrap()
}

/// The servers of a pipeline whose load tester pulls its records.
pub struct PullPipeline {
    pub dispatcher_url: String,
    /// Inference's task, then the dispatcher's.
    pub tasks: [JoinHandle<()>; 2],
}

/// Inference with the shipped model, and a dispatcher in front of it draining `drain_rate`
/// items/s with an empty `--report-url` (as the chart renders it by default for a load tester
/// outside the cluster): records wait in its outbox until a load tester pulls them.
pub async fn pull_pipeline(stop: &CancellationToken, drain_rate: &str) -> PullPipeline {
    let inference_config = inference_config();
    let (inference_url, inference) = serve(stop, |listener, stop| {
        inference::run(listener, inference_config, stop)
    })
    .await;
    let dispatcher_config = dispatcher::Config::try_parse_from([
        "dispatcher",
        "--inference-url",
        &inference_url,
        "--drain-rate",
        drain_rate,
        "--report-url",
        "",
    ])
    .unwrap();
    let (dispatcher_url, dispatcher) = serve(stop, |listener, stop| {
        dispatcher::run(listener, dispatcher_config, stop)
    })
    .await;
    PullPipeline {
        dispatcher_url,
        tasks: [inference, dispatcher],
    }
}

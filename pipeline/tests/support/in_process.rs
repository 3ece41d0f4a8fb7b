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

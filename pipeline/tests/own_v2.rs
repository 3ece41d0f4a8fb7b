//! The dispatcher and the load tester against inference's own Open Inference Protocol routes:
//! the harness's two v2 clients and the v2 server of this project must agree, (a) straight at
//! inference (`--target v2`, binary tensors, the classification extension) and (b) through a
//! dispatcher with `--upstream-protocol v2` and base64 BYTES. Every request is accounted for
//! and answered with the photo's label.

// Helpers outside #[test] functions unwrap too: a panic there is the failure report.
#![allow(clippy::unwrap_used)]

#[path = "support/two_photos.rs"]
mod two_photos;

use std::sync::Arc;

use clap::Parser;
use load_tester::target::{DirectTarget, TargetKind, V2Bytes, V2Model};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use two_photos::{assert_right, options, root, run};

const MODEL: &str = "efficientnet-lite0";

/// inference on a loopback port under tract; stops when `stop` is cancelled.
async fn start_inference(stop: &CancellationToken) -> (String, tokio::task::JoinHandle<()>) {
    let model = root().join("inference/model/efficientnet-lite0.onnx");
    let labels = root().join("inference/model/imagenet-labels.txt");
    let config = inference::Config::try_parse_from([
        "inference".as_ref(),
        "--model".as_ref(),
        model.as_os_str(),
        "--labels".as_ref(),
        labels.as_os_str(),
        "--runtime".as_ref(),
        "tract".as_ref(),
        "--workers".as_ref(),
        "2".as_ref(),
    ])
    .unwrap();
    let classifier = Arc::new(inference::Classifier::load(&config).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = stop.clone().cancelled_owned();
    let server = tokio::spawn(async move {
        inference::run_with_classifier(listener, config, classifier, shutdown)
            .await
            .unwrap();
    });
    (url, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatcher_and_load_tester_against_inference_v2() {
    let stop = CancellationToken::new();
    let (url, server) = start_inference(&stop).await;
    let dir = tempfile::tempdir().unwrap();

    // (a) Straight at inference's v2 routes, binary tensors, classification extension.
    let target = DirectTarget::V2 {
        url: reqwest::Url::parse(&url).unwrap(),
        model: V2Model {
            model: MODEL.into(),
            bytes: V2Bytes::Binary,
            input: "image".into(),
            classification_output: Some("logits".into()),
        },
    };
    let direct = run(options(&url, &dir.path().join("direct"), Some(target)).await).await;
    assert_right(&direct);
    assert_eq!(direct.target.kind, TargetKind::V2);

    // (b) Through a dispatcher whose upstream is inference over v2, base64 BYTES.
    let config = dispatcher::Config::try_parse_from([
        "dispatcher",
        "--inference-url",
        &url,
        "--upstream-protocol",
        "v2",
        "--v2-bytes",
        "base64",
        "--model-name",
        MODEL,
        "--v2-classification-output",
        "logits",
        "--drain-rate",
        "20",
        "--report-url",
        "",
    ])
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dispatcher_url = format!("http://{}", listener.local_addr().unwrap());
    let dispatcher = tokio::spawn(dispatcher::run(
        listener,
        config,
        stop.clone().cancelled_owned(),
    ));
    let through = run(options(&dispatcher_url, &dir.path().join("through"), None).await).await;
    assert_right(&through);
    assert_eq!(through.target.kind, TargetKind::Dispatcher);
    stop.cancel();
    dispatcher.await.unwrap().unwrap();
    server.await.unwrap();
}

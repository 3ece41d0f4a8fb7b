//! The service over real TCP: `run` loads and serves, shutdown is graceful, start-up fails
//! loudly on a bad model.

use std::sync::Arc;
use std::time::Duration;

use harness_core::wire::InferResponse;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::support::{self, config, eventually, hold_workers, photo, ready_state};

async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

fn infer_body(name: &str) -> String {
    serde_json::json!({"image": harness_core::image_payload::encode(&photo(name))}).to_string()
}

async fn post_infer(client: &reqwest::Client, url: &str, name: &str) -> reqwest::Response {
    client
        .post(format!("{url}/infer"))
        .header("content-type", "application/json")
        .body(infer_body(name))
        .send()
        .await
        .expect("request sent")
}

#[tokio::test]
async fn run_loads_the_model_then_serves_until_shutdown() {
    let (listener, url) = listener().await;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(inference::run(
        listener,
        config(&["--workers", "1"]),
        async {
            let _ = stopped.await;
        },
    ));
    let client = reqwest::Client::new();
    // Ready once loaded and warmed up (a few seconds at most).
    let mut ready = false;
    for _ in 0..600 {
        let status = client
            .get(format!("{url}/readyz"))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status == 200 || status == 503, "{status}");
        if status == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "the service became ready");
    assert_eq!(
        client
            .get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let response = post_infer(&client, &url, "coffee.png").await;
    assert_eq!(response.status(), 200);
    let body: InferResponse = response.json().await.unwrap();
    assert_eq!(body.predictions[0].label, "espresso");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("stops promptly")
        .unwrap()
        .expect("clean exit");
    assert!(
        client.get(format!("{url}/healthz")).send().await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn a_model_that_cannot_load_stops_the_service_with_an_error() {
    let (first, _) = listener().await;
    let mut bad_model = config(&[]);
    bad_model.model = support::repo_path("inference/model/MODEL.md");
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        inference::run(first, bad_model, std::future::pending()),
    )
    .await
    .expect("fails fast");
    let err = format!("{:#}", result.unwrap_err());
    assert!(err.contains("MODEL.md"), "{err}");

    // Inconsistent preprocessing is refused before anything is served.
    let (second, _) = listener().await;
    let bad_resize = config(&["--resize-shorter", "200"]);
    let err = inference::run(second, bad_resize, std::future::pending())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("--resize-shorter"), "{err:#}");

    // Labels that do not match the output width are refused at load, clearly.
    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("labels.txt");
    std::fs::write(&labels, "cat\ndog\n").unwrap();
    let mut bad_labels = config(&[]);
    bad_labels.labels = labels;
    let err = inference::Classifier::load(&bad_labels).unwrap_err();
    assert_eq!(err.code(), "model_error");
    assert!(err.to_string().contains("1000 output classes"), "{err}");
}

#[tokio::test]
async fn shutdown_waits_for_the_request_in_flight() {
    let (listener, url) = listener().await;
    let state = ready_state(&["--workers", "1"]);
    let release = hold_workers(&state);
    eventually("the worker is busy", || {
        state.metrics().in_flight.get() == 1
    })
    .await;

    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(inference::serve(listener, state.clone(), async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let in_flight = {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move { post_infer(&client, &url, "coffee.png").await })
    };
    eventually("the request is queued", || {
        state.metrics().queue_depth.get() == 1
    })
    .await;

    stop.send(()).unwrap();
    // Shutdown has begun but cannot finish while the request is pending.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !server.is_finished(),
        "the server waits for its in-flight request"
    );

    drop(release);
    let response = in_flight.await.unwrap();
    assert_eq!(response.status(), 200);
    let body: InferResponse = response.json().await.unwrap();
    assert_eq!(body.predictions[0].label, "espresso");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("stops once the request is done")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn replicas_share_one_loaded_classifier() {
    let classifier = support::classifier();
    let mut stops = Vec::new();
    let mut servers = Vec::new();
    let client = reqwest::Client::new();
    let mut urls = Vec::new();
    for _ in 0..2 {
        let (listener, url) = listener().await;
        let (stop, stopped) = oneshot::channel::<()>();
        servers.push(tokio::spawn(inference::run_with_classifier(
            listener,
            config(&["--workers", "1"]),
            Arc::clone(&classifier),
            async {
                let _ = stopped.await;
            },
        )));
        stops.push(stop);
        urls.push(url);
    }
    for url in &urls {
        // Ready at once: the model was loaded before.
        assert_eq!(
            client
                .get(format!("{url}/readyz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        let response = post_infer(&client, url, "camera.png").await;
        let body: InferResponse = response.json().await.unwrap();
        assert_eq!(body.predictions[0].label, "tripod");
        // Each replica has its own metrics.
        let metrics = client
            .get(format!("{url}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("inference_requests_total{outcome=\"ok\",protocol=\"harness\"} 1"),
            "{metrics}"
        );
    }
    for stop in stops {
        stop.send(()).unwrap();
    }
    for server in servers {
        server.await.unwrap().unwrap();
    }
}

//! The walkthrough's topology, with the real services as separate servers: a load tester the
//! dispatcher cannot reach (its `--report-url` is empty, as the chart renders it by default for
//! a load tester on a laptop behind `kubectl port-forward`) still gets every record, by pulling
//! them through the dispatcher's base URL. Driven over HTTP as a user would: `POST
//! /runLoadTest`, poll `GET /runs/{id}`, `POST /generateReport`.

// Helpers state their expectations with unwrap too: a panic there is the failure report.
#![allow(clippy::unwrap_used)]

#[path = "support/in_process.rs"]
mod in_process;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use in_process::{repo, serve};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Sends `request` and reads its JSON answer.
async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_tester_the_dispatcher_cannot_reach_gets_every_record_by_pulling() {
    let stop = CancellationToken::new();
    let pipeline = in_process::pull_pipeline(&stop, "40").await;
    let dispatcher_url = pipeline.dispatcher_url;
    let [inference, dispatcher] = pipeline.tasks;
    let reports = tempfile::tempdir().unwrap();
    let load_tester_config = load_tester::Cli::try_parse_from([
        "load-tester".to_owned(),
        "serve".to_owned(),
        "--dispatcher-url".to_owned(),
        dispatcher_url.clone(),
        "--images".to_owned(),
        repo("images"),
        "--reports-dir".to_owned(),
        reports.path().display().to_string(),
    ])
    .unwrap();
    let load_tester::Command::Serve(load_tester_config) = load_tester_config.command else {
        unreachable!("serve was asked for")
    };
    let (load_tester_url, load_tester) = serve(&stop, |listener, stop| {
        load_tester::run(listener, load_tester_config, stop)
    })
    .await;

    let client = reqwest::Client::new();
    let started = json_of(
        client
            .post(format!("{load_tester_url}/runLoadTest"))
            .json(&json!({"workload": [6, 6, 6]})),
    )
    .await;
    let run_id = started["runId"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let progress = json_of(client.get(format!("{load_tester_url}/runs/{run_id}"))).await;
        if progress["phase"] == "done" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{progress}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let written = json_of(
        client
            .post(format!("{load_tester_url}/generateReport"))
            .json(&json!({})),
    )
    .await;
    let stats = &written["stats"];
    assert_eq!(stats["sent"], 18, "{stats}");
    assert_eq!(stats["succeeded"], 18, "{stats}");
    assert_eq!(stats["missing"], 0, "{stats}");
    assert_eq!(stats["duplicates"], 0, "{stats}");
    let delivery = &stats["delivery"];
    assert_eq!(delivery["mode"], "auto", "{delivery}");
    assert_eq!(delivery["pull"], "active", "{delivery}");
    assert_eq!(delivery["pulled"], 18, "{delivery}");
    assert_eq!(delivery["pushed"], 0, "{delivery}");
    assert_eq!(delivery["dispatcherDropped"]["retention"], 0, "{delivery}");
    let on_disk: Value = serde_json::from_slice(
        &std::fs::read(PathBuf::from(written["statsJson"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    assert_eq!(&on_disk["delivery"], delivery);

    // Everything was acknowledged: the dispatcher holds no record of the run.
    let metrics = client
        .get(format!("{dispatcher_url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l == "dispatcher_outbox_length 0"),
        "{metrics}"
    );
    stop.cancel();
    for task in [load_tester, dispatcher, inference] {
        task.await.unwrap();
    }
}

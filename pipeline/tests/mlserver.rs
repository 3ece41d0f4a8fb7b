//! The dispatcher and the load tester against Seldon MLServer, a real Open Inference Protocol
//! (KServe v2) server this project did not write: a small custom runtime
//! (`tests/mlserver/efficientnet/runtime.py`) serves the harness's model with onnxruntime, takes
//! the image as the BYTES input `image` in base64 and answers a BYTES `label`. A short run goes
//! (a) straight at MLServer (`--target v2`) and (b) through a dispatcher with
//! `--upstream-protocol v2`; each must account for every request and get the right labels.
//!
//! MLServer comes from `scripts/install-mlserver.sh` (`.tools/mlserver`), or `MLSERVER_BIN`, or
//! PATH. Without it the test fails when `CI` is set and is skipped (loudly) otherwise.

// Helpers state their expectations with unwrap too: a panic there is the failure report.
#![allow(clippy::unwrap_used)]

#[path = "support/two_photos.rs"]
mod two_photos;

#[path = "support/procs.rs"]
mod procs;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use clap::Parser;
use load_tester::target::{DirectTarget, TargetKind, V2Bytes, V2Model};
use pipeline::prometheus::find_on_path;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use two_photos::{assert_right, options, root, run};

const MODEL: &str = "efficientnet";
/// How long MLServer may take to import its runtime and load the model.
const STARTUP: Duration = Duration::from_secs(90);

/// The `mlserver` executable, or `None` (with a loud message) when it is missing outside CI.
fn mlserver_bin() -> Option<PathBuf> {
    let found = std::env::var_os("MLSERVER_BIN")
        .map(PathBuf::from)
        .or_else(|| Some(root().join(".tools/mlserver/bin/mlserver")).filter(|p| p.is_file()))
        .or_else(|| find_on_path("mlserver"));
    match found {
        Some(bin) => Some(bin),
        None if std::env::var_os("CI").is_some() => {
            panic!("CI is set but MLServer is not installed (scripts/install-mlserver.sh)")
        }
        None => {
            // Straight to the stderr handle: the harness captures `eprintln!` of a passing test.
            let _ = writeln!(
                std::io::stderr(),
                "\n==================== SKIPPED ====================\n\
                 tests/mlserver.rs needs Seldon MLServer: run scripts/install-mlserver.sh\n\
                 (or set MLSERVER_BIN). Set CI=1 to make this a failure.\n\
                 ================================================="
            );
            None
        }
    }
}

/// MLServer on free loopback ports, killed when dropped.
struct MlServer {
    url: String,
    _child: Child,
}

async fn start_mlserver(bin: &Path) -> MlServer {
    let port = procs::free_port();
    let output = || match std::env::var_os("RUST_LOG") {
        Some(_) => Stdio::inherit(),
        None => Stdio::null(),
    };
    let mut child = Command::new(bin)
        .arg("start")
        .arg(root().join("pipeline/tests/mlserver"))
        .env("MLSERVER_HOST", "127.0.0.1")
        .env("MLSERVER_HTTP_PORT", port.to_string())
        .env("MLSERVER_GRPC_PORT", procs::free_port().to_string())
        .env("MLSERVER_METRICS_PORT", procs::free_port().to_string())
        .stdout(output())
        .stderr(output())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let ready = format!("{url}/v2/models/{MODEL}/ready");
    let deadline = tokio::time::Instant::now() + STARTUP;
    loop {
        if let Ok(r) = reqwest::get(&ready).await
            && r.status().is_success()
        {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("mlserver exited early ({status}); run with RUST_LOG=info to see its log");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "MLServer was not ready within {STARTUP:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    MlServer { url, _child: child }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatcher_and_load_tester_against_mlserver() {
    let Some(bin) = mlserver_bin() else {
        return;
    };
    let server = start_mlserver(&bin).await;
    let dir = tempfile::tempdir().unwrap();

    // (a) Straight at MLServer.
    let target = DirectTarget::V2 {
        url: reqwest::Url::parse(&server.url).unwrap(),
        model: V2Model {
            model: MODEL.into(),
            bytes: V2Bytes::Base64,
            input: "image".into(),
            classification_output: None,
        },
    };
    let direct = run(options(&server.url, &dir.path().join("direct"), Some(target)).await).await;
    assert_right(&direct);
    assert_eq!(direct.target.kind, TargetKind::V2);
    assert_eq!(direct.target.model_name.as_deref(), Some(MODEL));
    assert_eq!(
        direct.delivery.paths(),
        "none",
        "no records in a direct run"
    );

    // (b) Through a dispatcher whose upstream is MLServer.
    let config = dispatcher::Config::try_parse_from([
        "dispatcher",
        "--inference-url",
        &server.url,
        "--upstream-protocol",
        "v2",
        "--v2-bytes",
        "base64",
        "--model-name",
        MODEL,
        "--drain-rate",
        "20",
        "--report-url",
        "",
    ])
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dispatcher_url = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let dispatcher = tokio::spawn(dispatcher::run(
        listener,
        config,
        stop.clone().cancelled_owned(),
    ));
    let through = run(options(&dispatcher_url, &dir.path().join("through"), None).await).await;
    assert_right(&through);
    assert_eq!(through.target.kind, TargetKind::Dispatcher);
    assert_eq!(
        through.delivery.paths(),
        "pull",
        "records pulled from the dispatcher"
    );
    stop.cancel();
    dispatcher.await.unwrap().unwrap();
}

//! Triton's official Python HTTP client (`tritonclient[http]`, installed by
//! scripts/install-tritonclient.sh) against the real service on a loopback port: readiness,
//! metadata, config, inference with BYTES (binary and base64 JSON) and with the preprocessed
//! FP32 tensor, the classification extension, and refusals in the v2 error shape. The checks are
//! in `tritonclient_check.py`, next to this file; this test starts the server, runs the script
//! and reads its `PASS`/`FAIL` lines.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;

use inference::decode::{DecodeLimits, decode_into};
use inference::preprocess::Preprocessor;
use tokio::net::TcpListener;

use crate::support::{classifier, config, photo, repo_path};

/// Every check the script must report as passed.
const CHECKS: &[&str] = &[
    "server_live",
    "server_ready",
    "model_ready",
    "model_ready_version_1",
    "server_metadata",
    "model_metadata",
    "model_config",
    "infer_bytes_binary_classification",
    "infer_bytes_base64_json_logits",
    "infer_fp32_tensor_classification",
    "infer_fp32_tensor_logits",
    "error_wrong_datatype",
    "error_wrong_shape",
    "error_not_an_image",
    "error_unknown_output",
    "error_unknown_model",
];

/// The virtualenv's python with tritonclient, or `None` (loudly) when it is missing outside CI.
fn python() -> Option<PathBuf> {
    let found = std::env::var_os("TRITONCLIENT_PYTHON")
        .map(PathBuf::from)
        .or_else(|| Some(repo_path(".tools/tritonclient/bin/python")).filter(|p| p.is_file()));
    match found {
        Some(python) => Some(python),
        None if std::env::var_os("CI").is_some() => {
            panic!("CI is set but tritonclient is not installed (scripts/install-tritonclient.sh)")
        }
        None => {
            // Straight to the stderr handle: the harness captures `eprintln!` of a passing test.
            let _ = writeln!(
                std::io::stderr(),
                "\n==================== SKIPPED ====================\n\
                 tests/api/tritonclient.rs needs Triton's Python client: run\n\
                 scripts/install-tritonclient.sh (or set TRITONCLIENT_PYTHON).\n\
                 Set CI=1 to make this a failure.\n\
                 ================================================="
            );
            None
        }
    }
}

/// coffee.png after the service's own decode and preprocessing, as raw little-endian f32.
fn preprocessed_coffee(dir: &std::path::Path) -> PathBuf {
    let classifier = classifier();
    let image = decode_into(
        &photo("coffee.png"),
        &DecodeLimits::new(50_000_000),
        Vec::new(),
    )
    .expect("coffee.png decodes");
    let tensor = Preprocessor::default()
        .run(classifier.preprocessing(), &image)
        .expect("coffee.png preprocesses");
    let bytes: Vec<u8> = tensor.iter().flat_map(|v| v.to_le_bytes()).collect();
    let path = dir.join("coffee.f32");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritons_python_client_speaks_v2_with_the_service() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tensor = preprocessed_coffee(dir.path());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(inference::run_with_classifier(
        listener,
        config(&[]),
        classifier(),
        async move {
            let _ = stopped.await;
        },
    ));

    let script = repo_path("inference/tests/api/tritonclient_check.py");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(addr.to_string())
            .arg(classifier().name())
            .arg(repo_path("images"))
            .arg(tensor)
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    let _ = stop.send(());
    server.await.unwrap().unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let transcript = format!("--- stdout\n{stdout}--- stderr\n{stderr}");
    let _ = writeln!(std::io::stderr(), "{transcript}");
    for check in CHECKS {
        assert!(
            stdout.contains(&format!("PASS {check}:")),
            "check {check} did not pass\n{transcript}"
        );
    }
    assert!(!stdout.contains("FAIL "), "{transcript}");
    assert!(output.status.success(), "{transcript}");
}

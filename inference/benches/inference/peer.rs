//! The servers of the head-to-head run, each a process pinned to one core with `taskset`: this
//! service (its release binary, one worker, under either runtime) and the Python peer
//! (`benches/peer_service.py`: FastAPI + Uvicorn + onnxruntime, one intra-op thread).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::root;

/// A server under test, stopped when dropped.
pub struct Server {
    pub name: String,
    pub url: String,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        // The child is ours (spawned below); a kill error only means it already exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port on 127.0.0.1 (bound, then released for the child to take).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn model_paths() -> (PathBuf, PathBuf) {
    let root = root();
    (
        root.join("inference/model/efficientnet-lite0.onnx"),
        root.join("inference/model/imagenet-labels.txt"),
    )
}

/// `taskset -c <core> <program>`.
fn pinned(core: usize, program: &Path) -> Command {
    let mut command = Command::new("taskset");
    command.arg("-c").arg(core.to_string()).arg(program);
    command
}

/// This service's binary on `core` with one worker under `runtime` (`tract`, `onnxruntime`).
pub async fn service(core: usize, runtime: &str) -> anyhow::Result<Server> {
    let port = free_port()?;
    let (model, labels) = model_paths();
    let mut command = pinned(core, Path::new(env!("CARGO_BIN_EXE_inference")));
    command
        .args([
            "--workers",
            "1",
            "--queue-capacity",
            "64",
            "--runtime",
            runtime,
        ])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--model")
        .arg(model)
        .arg("--labels")
        .arg(labels)
        .env("RUST_LOG", "warn");
    let name = format!("{runtime} (this service)");
    start(name, command, port, "/readyz").await
}

/// The Python peer on `core`, run by `python`.
pub async fn peer(core: usize, python: &str) -> anyhow::Result<Server> {
    let port = free_port()?;
    let (model, labels) = model_paths();
    let python = which(python)?;
    let mut command = pinned(core, &python);
    command
        .arg(root().join("inference/benches/peer_service.py"))
        .arg("--model")
        .arg(model)
        .arg("--labels")
        .arg(labels)
        .arg("--port")
        .arg(port.to_string());
    start(
        "FastAPI + onnxruntime (peer)".into(),
        command,
        port,
        "/healthz",
    )
    .await
}

/// `program` as a path: itself when it has a directory, else the first match on `PATH`.
fn which(program: &str) -> anyhow::Result<PathBuf> {
    let path = Path::new(program);
    if path.components().count() > 1 {
        return Ok(path.to_owned());
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("{program} is not on PATH"))
}

/// Spawns `command` and waits until `ready` answers 200 (the model is loaded and warmed up).
async fn start(
    name: String,
    mut command: Command,
    port: u16,
    ready: &str,
) -> anyhow::Result<Server> {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {name} (is `taskset` installed?)"))?;
    let mut server = Server {
        name,
        url: format!("http://127.0.0.1:{port}"),
        child,
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(status) = server.child.try_wait()? {
            bail!("{} exited at start-up ({status})", server.name);
        }
        let probe = client.get(format!("{}{ready}", server.url)).send().await;
        if probe.is_ok_and(|r| r.status().is_success()) {
            return Ok(server);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{} was not ready within 60 s", server.name)
}

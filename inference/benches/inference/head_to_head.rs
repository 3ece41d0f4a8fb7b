//! [4] This service against its Python peer, per core: each server pinned to core 0 with one
//! worker, the same closed-loop client on core 1, the same JSON bodies, rounds alternated so
//! that drift in machine load hits every server alike.
//!
//! Two figures per server and photo: requests per second at saturation (two clients in closed
//! loops, so the next request is always waiting), and the median latency at half load (an
//! open loop paced at half the peer's rate, latency measured from each request's intended
//! start, so a slow server cannot hide its own queueing).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use serde_json::Value;

use crate::Photo;
use crate::peer::{self, Server};
use crate::samples::Samples;

/// Closed-loop clients at saturation (one request served, one waiting).
const CLIENTS: usize = 2;
/// Requests per saturation measurement, after `WARM_UP` unmeasured ones.
const SATURATION_REQUESTS: usize = 60;
const WARM_UP: usize = 4;
/// Length of one half-load measurement.
const HALF_LOAD_SECONDS: f64 = 3.0;

/// One server's figures on one photo, over the rounds.
#[derive(Default)]
struct Figures {
    per_second: Vec<f64>,
    p50_ms: Vec<f64>,
    top1: String,
}

fn median(values: &[f64]) -> f64 {
    Samples(values.to_vec()).median()
}

/// Runs the head-to-head on `photos` over `rounds` and prints the table and the ratios.
pub async fn run(
    photos: &[&Photo],
    rounds: usize,
    python: &str,
    with_ort: bool,
) -> anyhow::Result<()> {
    pin_self_to(1)?;
    let mut servers = Vec::new();
    if with_ort {
        servers.push(peer::service(0, "onnxruntime").await?);
    }
    servers.push(peer::service(0, "tract").await?);
    match peer::peer(0, python).await {
        Ok(peer) => servers.push(peer),
        Err(err) => println!("  peer skipped: {err:#}"),
    }
    let client = reqwest::Client::new();
    let bodies: Vec<Bytes> = photos.iter().map(|p| json_body(p)).collect();
    // figures[photo][server]
    let mut figures: Vec<Vec<Figures>> = photos
        .iter()
        .map(|_| servers.iter().map(|_| Figures::default()).collect())
        .collect();
    for round in 0..rounds {
        for (p, body) in bodies.iter().enumerate() {
            for s in rotated(servers.len(), round + p) {
                let f = &mut figures[p][s];
                let url = format!("{}/infer", servers[s].url);
                f.top1 = top1(&client, &url, body).await?;
                saturate(&client, &url, body, WARM_UP).await?;
                let started = Instant::now();
                saturate(&client, &url, body, SATURATION_REQUESTS).await?;
                f.per_second
                    .push(SATURATION_REQUESTS as f64 / started.elapsed().as_secs_f64());
            }
        }
    }
    // Half load: half the peer's (else the slowest server's) saturated rate, the same for all.
    for round in 0..rounds {
        for p in 0..bodies.len() {
            let reference = figures[p].last().map_or(1.0, |f| median(&f.per_second));
            let rate = reference / 2.0;
            for s in rotated(servers.len(), round + p) {
                let url = format!("{}/infer", servers[s].url);
                let p50 = half_load(&client, &url, &bodies[p], rate).await?;
                figures[p][s].p50_ms.push(p50);
            }
        }
    }
    print_table(photos, &servers, &figures, rounds);
    Ok(())
}

/// `0..n` starting at `shift % n`: each round begins with a different server.
fn rotated(n: usize, shift: usize) -> Vec<usize> {
    (0..n).map(|i| (i + shift) % n).collect()
}

/// Moves every thread of this process (the client) to `core`, off the servers' core.
fn pin_self_to(core: usize) -> anyhow::Result<()> {
    let status = std::process::Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &core.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .context("running taskset")?;
    if !status.success() {
        bail!("taskset could not pin the client to core {core}");
    }
    Ok(())
}

fn json_body(photo: &Photo) -> Bytes {
    let image = harness_core::image_payload::encode(&photo.bytes);
    Bytes::from(serde_json::json!({ "image": image }).to_string())
}

async fn post(client: &reqwest::Client, url: &str, body: &Bytes) -> anyhow::Result<Value> {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("{url}: {}", response.status());
    }
    Ok(response.json().await?)
}

async fn top1(client: &reqwest::Client, url: &str, body: &Bytes) -> anyhow::Result<String> {
    let answer = post(client, url, body).await?;
    let best = &answer["predictions"][0];
    Ok(format!(
        "{} {:.1}%",
        best["label"].as_str().unwrap_or("?"),
        best["score"].as_f64().unwrap_or(f64::NAN) * 100.0
    ))
}

/// `count` requests from `CLIENTS` closed loops.
async fn saturate(
    client: &reqwest::Client,
    url: &str,
    body: &Bytes,
    count: usize,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let loops = (0..CLIENTS).map(|_| {
        let (client, url, body, next) = (
            client.clone(),
            url.to_owned(),
            body.clone(),
            Arc::clone(&next),
        );
        tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < count {
                post(&client, &url, &body).await?;
            }
            anyhow::Ok(())
        })
    });
    for result in futures::future::join_all(loops).await {
        result??;
    }
    Ok(())
}

/// The median latency, in ms, of requests sent at `rate` per second for `HALF_LOAD_SECONDS`,
/// each measured from its intended start.
async fn half_load(
    client: &reqwest::Client,
    url: &str,
    body: &Bytes,
    rate: f64,
) -> anyhow::Result<f64> {
    let count = ((rate * HALF_LOAD_SECONDS) as usize).max(10);
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut requests = Vec::with_capacity(count);
    for i in 0..count {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        let (client, url, body) = (client.clone(), url.to_owned(), body.clone());
        requests.push(tokio::spawn(async move {
            tokio::time::sleep_until(due).await;
            post(&client, &url, &body).await?;
            anyhow::Ok(due.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    for request in requests {
        latencies.push(request.await??);
    }
    Ok(median(&latencies))
}

fn print_table(photos: &[&Photo], servers: &[Server], figures: &[Vec<Figures>], rounds: usize) {
    println!("  {rounds} rounds; req/s and p50 are medians over the rounds (ranges in brackets)");
    for (p, photo) in photos.iter().enumerate() {
        println!("  {}:", photo.name);
        for (s, server) in servers.iter().enumerate() {
            let f = &figures[p][s];
            let (lo, hi) = range(&f.per_second);
            println!(
                "    {:<30} {:>6.1} req/s [{lo:.1}-{hi:.1}]  p50 at half load {:>6.1} ms  top-1 {}",
                server.name,
                median(&f.per_second),
                median(&f.p50_ms),
                f.top1
            );
        }
        let peer = servers.len() - 1;
        if servers[peer].name.contains("peer") {
            for s in 0..peer {
                println!(
                    "    {} / peer: {:.2}x req/s, p50 {:.2}x",
                    servers[s].name,
                    median(&figures[p][s].per_second) / median(&figures[p][peer].per_second),
                    median(&figures[p][s].p50_ms) / median(&figures[p][peer].p50_ms)
                );
            }
        }
    }
}

fn range(values: &[f64]) -> (f64, f64) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

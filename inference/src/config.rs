//! Configuration: one clap struct, every setting a flag, an environment variable and a default.
//!
//! Values are parsed into domain types here ([`PerChannel`], durations, non-zero counts), so the
//! rest of the crate never sees a raw string. Cross-field checks (`--resize-shorter` at least
//! `--input-size`, a non-zero std) happen once, in [`Config::preprocessing`], which turns the
//! flags into the domain's [`Preprocessing`].

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;

use crate::cpu_quota;
use crate::error::Error;
use crate::preprocess::Preprocessing;
use crate::runtime::RuntimeChoice;

/// Settings of the inference service.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "inference",
    version,
    about = "HTTP image classifier on tract or onnxruntime"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8000")]
    pub listen: SocketAddr,

    /// ONNX model: one float NCHW input, one output of class logits.
    #[arg(
        long,
        env = "MODEL_PATH",
        default_value = "inference/model/efficientnet-lite0.onnx"
    )]
    pub model: PathBuf,

    /// Class names in model output order, one per line.
    #[arg(
        long,
        env = "LABELS_PATH",
        default_value = "inference/model/imagenet-labels.txt"
    )]
    pub labels: PathBuf,

    /// Name reported in responses and metrics [default: file stem of --model].
    #[arg(long, env = "MODEL_NAME")]
    pub model_name: Option<String>,

    /// Side of the square model input, in pixels.
    #[arg(long, env = "INPUT_SIZE", default_value_t = 224, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub input_size: u32,

    /// The shorter side of the image is resized to this before the centre crop.
    #[arg(long, env = "RESIZE_SHORTER", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=8192))]
    pub resize_shorter: u32,

    /// Per-channel (R,G,B) mean subtracted after scaling to [0,1]: one value or three.
    #[arg(long, env = "MEAN", default_value = "0.5,0.5,0.5")]
    pub mean: PerChannel,

    /// Per-channel (R,G,B) standard deviation divided by after the mean: one value or three.
    #[arg(long, env = "STD", default_value = "0.5,0.5,0.5")]
    pub std: PerChannel,

    /// Number of classes returned, most probable first.
    #[arg(long, env = "TOP_K", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub top_k: u32,

    /// Runtime that runs the model: auto (onnxruntime when its library loads, else tract),
    /// tract, or onnxruntime (start-up fails when its library does not load).
    #[arg(long, env = "INFERENCE_RUNTIME", value_enum, default_value_t = RuntimeChoice::Auto)]
    pub runtime: RuntimeChoice,

    /// The onnxruntime shared library [default: libonnxruntime.so on the loader's search path].
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_dylib_path: Option<PathBuf>,

    /// Threads of one onnxruntime run (per worker; workers already scale across cores).
    #[arg(long, env = "INTRA_OP_THREADS", default_value = "1")]
    pub intra_op_threads: NonZeroUsize,

    /// Blocking workers that decode, preprocess and run the model [default: CPUs the process may
    /// use, from cgroup v2 cpu.max, else the available parallelism].
    #[arg(long, env = "WORKERS")]
    pub workers: Option<NonZeroUsize>,

    /// Requests that may wait for a worker; beyond this, 503 with Retry-After.
    #[arg(long, env = "QUEUE_CAPACITY", default_value_t = 32)]
    pub queue_capacity: usize,

    /// Largest accepted request body (413 beyond).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest accepted image, in pixels, checked from the header before decoding.
    #[arg(long, env = "MAX_PIXELS", default_value_t = 50_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_pixels: u64,

    /// Time limit for one request, body upload and queueing included.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Concurrent /infer requests (bodies being received, queued or running); beyond this, 503
    /// [default: 4 × (workers + queue capacity)].
    #[arg(long, env = "MAX_CONCURRENCY")]
    pub max_concurrency: Option<NonZeroUsize>,
}

impl Config {
    /// The model name: `--model-name`, else the model file's stem.
    pub fn model_name(&self) -> String {
        self.model_name.clone().unwrap_or_else(|| {
            self.model
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model".to_owned())
        })
    }

    /// The worker count: `--workers`, else the CPUs this process may use.
    pub fn worker_count(&self) -> NonZeroUsize {
        self.workers.unwrap_or_else(cpu_quota::usable_cpus)
    }

    /// The preprocessing named by `--input-size`, `--resize-shorter`, `--mean` and `--std`,
    /// checked for consistency.
    pub fn preprocessing(&self) -> Result<Preprocessing, Error> {
        Preprocessing::new(
            self.input_size,
            self.resize_shorter,
            self.mean.0,
            self.std.0,
        )
    }

    /// The concurrency limit of `/infer`: `--max-concurrency`, else 4 × (workers + queue).
    pub fn concurrency_limit(&self) -> usize {
        self.max_concurrency.map_or_else(
            || 4 * (self.worker_count().get() + self.queue_capacity),
            NonZeroUsize::get,
        )
    }
}

/// One value per colour channel (R, G, B). Parses `0.5` (all three) or `0.485,0.456,0.406`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerChannel(pub [f32; 3]);

impl FromStr for PerChannel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let values = s
            .split(',')
            .map(|v| {
                let v = v.trim();
                match v.parse::<f32>() {
                    Ok(x) if x.is_finite() => Ok(x),
                    _ => Err(format!("{v:?} is not a finite number")),
                }
            })
            .collect::<Result<Vec<f32>, String>>()?;
        match values[..] {
            [x] => Ok(PerChannel([x; 3])),
            [r, g, b] => Ok(PerChannel([r, g, b])),
            _ => Err(format!(
                "expected one value or three (R,G,B), got {}",
                values.len()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_contract() {
        let c = Config::try_parse_from(["inference"]).unwrap();
        assert_eq!(c.listen, "0.0.0.0:8000".parse().unwrap());
        assert_eq!(c.input_size, 224);
        assert_eq!(c.resize_shorter, 256);
        assert_eq!(c.mean, PerChannel([0.5; 3]));
        assert_eq!(c.std, PerChannel([0.5; 3]));
        assert_eq!(c.top_k, 5);
        assert_eq!(c.queue_capacity, 32);
        assert_eq!(c.max_body_bytes, 10_485_760);
        assert_eq!(c.max_pixels, 50_000_000);
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert_eq!(c.model_name(), "efficientnet-lite0");
        assert_eq!(c.runtime, RuntimeChoice::Auto);
        assert_eq!(c.intra_op_threads.get(), 1);
        assert!(c.worker_count().get() >= 1);
        let workers = c.worker_count().get();
        assert_eq!(c.concurrency_limit(), 4 * (workers + 32));
    }

    #[test]
    fn per_channel_takes_one_or_three_values() {
        assert_eq!("0.5".parse::<PerChannel>(), Ok(PerChannel([0.5; 3])));
        assert_eq!(
            "0.485, 0.456,0.406".parse::<PerChannel>(),
            Ok(PerChannel([0.485, 0.456, 0.406]))
        );
        for bad in ["", "1,2", "1,2,3,4", "x", "NaN", "inf"] {
            assert!(bad.parse::<PerChannel>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn flags_override_and_bad_values_are_refused() {
        let c = Config::try_parse_from([
            "inference",
            "--workers",
            "3",
            "--request-timeout",
            "250ms",
            "--mean",
            "0.1",
            "--model",
            "/m/resnet.onnx",
            "--runtime",
            "onnxruntime",
            "--intra-op-threads",
            "2",
        ])
        .unwrap();
        assert_eq!(c.runtime, RuntimeChoice::Onnxruntime);
        assert_eq!(c.intra_op_threads.get(), 2);
        assert_eq!(c.worker_count().get(), 3);
        assert_eq!(c.request_timeout, Duration::from_millis(250));
        assert_eq!(c.mean, PerChannel([0.1; 3]));
        assert_eq!(c.model_name(), "resnet");
        for bad in [
            ["inference", "--workers", "0"],
            ["inference", "--top-k", "0"],
            ["inference", "--input-size", "0"],
            ["inference", "--std", "1,2"],
            ["inference", "--runtime", "cuda"],
            ["inference", "--intra-op-threads", "0"],
        ] {
            assert!(Config::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}

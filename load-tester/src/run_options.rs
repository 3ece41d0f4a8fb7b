//! What one run is asked to do: [`RunOptions`], with the command line's defaults, built from
//! the generator settings or by hand (the demo, the tests).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

use crate::config::{GeneratorArgs, GeneratorSettings};
use crate::delivery::RecordDelivery;
use crate::error::Error;
use crate::image_pool::ImagePool;
use crate::sampler::{MetricsSampler, Sampler};
use crate::schedule::Arrivals;
use crate::target::{DirectTarget, TargetInfo, TargetKind};
use crate::workload::Workload;

/// What to run. Build with [`RunOptions::new`] and adjust the public fields.
#[derive(Clone)]
pub struct RunOptions {
    pub workload: Workload,
    pub pool: Arc<ImagePool>,
    /// Base URL of the dispatcher.
    pub dispatcher_url: Url,
    pub arrivals: Arrivals,
    /// Cap on the requests sent (`maxImages`).
    pub max_requests: Option<u64>,
    /// Where the report folder goes.
    pub reports_dir: PathBuf,
    pub drain_timeout: Duration,
    pub concurrency: usize,
    pub request_timeout: Duration,
    pub sample_interval: Duration,
    /// Sample the dispatcher's `GET /stats` (queue length, ready replicas).
    pub sample_dispatcher: bool,
    /// Extra series for the queue/replicas plot.
    pub samplers: Vec<Arc<dyn Sampler>>,
    /// The number of requests the user expects; `missing` counts against it. Default: sent.
    pub total_requests: Option<u64>,
    /// Check that the dispatcher answers before sending.
    pub preflight: bool,
    /// Which paths bring the records back.
    pub record_delivery: RecordDelivery,
    /// A model server to load-test directly instead of the dispatcher (`--target infer|v2`):
    /// no records, pull or `/stats` sampling then; each answer decides its request.
    pub direct: Option<DirectTarget>,
}

impl RunOptions {
    /// Options with the defaults of the command line.
    pub fn new(
        workload: Workload,
        pool: Arc<ImagePool>,
        dispatcher_url: Url,
        reports_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            workload,
            pool,
            dispatcher_url,
            arrivals: Arrivals::Uniform,
            max_requests: None,
            reports_dir: reports_dir.into(),
            drain_timeout: Duration::from_secs(30),
            concurrency: 10_000,
            request_timeout: Duration::from_secs(10),
            sample_interval: Duration::from_secs(1),
            sample_dispatcher: true,
            samplers: Vec::new(),
            total_requests: None,
            preflight: true,
            record_delivery: RecordDelivery::Auto,
            direct: None,
        }
    }

    /// Options from the generator settings: validates them, reads the workload file and loads
    /// the image pool (skipped images are logged).
    pub async fn from_args(args: &GeneratorArgs) -> Result<Self, Error> {
        let settings = args.settings()?;
        let workload = Workload::load(&args.workload)?;
        let (pool, _skipped) = ImagePool::load(args.images.clone(), args.resize).await?;
        Ok(Self::with_settings(
            workload,
            Arc::new(pool),
            args,
            settings,
        ))
    }

    /// Options for `workload` and `pool` with everything else from validated settings.
    pub fn with_settings(
        workload: Workload,
        pool: Arc<ImagePool>,
        args: &GeneratorArgs,
        settings: GeneratorSettings,
    ) -> Self {
        let mut options = Self::new(workload, pool, settings.dispatcher_url, &args.reports_dir);
        options.direct = settings.direct;
        options.arrivals = settings.arrivals;
        options.max_requests = args.max_images;
        options.drain_timeout = args.drain_timeout;
        options.concurrency = settings.concurrency;
        options.request_timeout = args.request_timeout;
        options.sample_interval = args.sample_interval;
        options.record_delivery = args.record_delivery;
        let client = reqwest::Client::new();
        for source in settings.sample_metrics {
            let series = source.metric.clone();
            options.samplers.push(Arc::new(MetricsSampler::new(
                client.clone(),
                source.url,
                source.metric,
                series,
                source.kind,
            )));
        }
        options
    }
}

impl RunOptions {
    /// What the requests go to, as `stats.json` says it.
    pub fn target_info(&self) -> TargetInfo {
        match &self.direct {
            Some(target) => target.info(),
            None => TargetInfo {
                kind: TargetKind::Dispatcher,
                url: self.dispatcher_url.to_string(),
                model_name: None,
            },
        }
    }
}

//! The four services as the tests meet them: each one's real router (for `oneshot`), and each
//! one served on `127.0.0.1:0` by its crate's own entry point (for the limits hyper enforces).

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use autoscaler::{
    ControllerSettings, InferenceTargets, PolicySpec, ScaleTarget, ScrapeSource, TargetError,
    Tuning,
};
use axum::Router;
use clap::Parser;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::corpus::repo;

/// The bearer token the load tester's and the autoscaler's control endpoints are given.
pub const TOKEN: &str = "hostile-input-token";

/// A port nothing listens on: the load tester's preflight to it fails at once.
pub const CLOSED_URL: &str = "http://127.0.0.1:1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Inference,
    Dispatcher,
    LoadTester,
    Autoscaler,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Inference => "inference",
            Service::Dispatcher => "dispatcher",
            Service::LoadTester => "load-tester",
            Service::Autoscaler => "autoscaler",
        })
    }
}

/// The real model, loaded once per test binary.
pub fn classifier() -> Arc<inference::Classifier> {
    static CLASSIFIER: OnceLock<Arc<inference::Classifier>> = OnceLock::new();
    Arc::clone(CLASSIFIER.get_or_init(|| {
        let model = inference::Classifier::load(&inference_config());
        Arc::new(model.expect("the repository's model loads"))
    }))
}

/// Every service's defaults, with the repository's files and the tokens set. Inference runs
/// tract whatever the machine offers; [`onnxruntime_state`] runs the other runtime.
pub fn inference_config() -> inference::Config {
    inference::Config::try_parse_from([
        "inference".into(),
        "--model".into(),
        repo("inference/model/efficientnet-lite0.onnx"),
        "--labels".into(),
        repo("inference/model/imagenet-labels.txt"),
        "--runtime".into(),
        "tract".into(),
    ] as [std::path::PathBuf; 7])
    .expect("inference flags")
}

/// A ready inference state with the real model under onnxruntime, from `library`.
pub fn onnxruntime_state(library: &std::path::Path) -> inference::AppState {
    let mut config = inference_config();
    config.runtime = inference::runtime::RuntimeChoice::Onnxruntime;
    config.ort_dylib_path = Some(library.to_owned());
    let classifier =
        inference::Classifier::load(&config).expect("the model loads under onnxruntime");
    inference::AppState::with_classifier(&config, Arc::new(classifier)).expect("inference state")
}

pub fn dispatcher_config() -> dispatcher::Config {
    // No reachable endpoint and no reporting: accepted items stay queued.
    dispatcher::Config::try_parse_from([
        "dispatcher",
        "--inference-url",
        CLOSED_URL,
        "--report-url",
        "",
    ])
    .expect("dispatcher flags")
}

pub fn load_tester_config() -> load_tester::ServeConfig {
    let cli = load_tester::Cli::try_parse_from([
        "load-tester".into(),
        "serve".into(),
        "--auth-token".into(),
        TOKEN.into(),
        "--images".into(),
        repo("images").into_os_string(),
        "--workload".into(),
        repo("workload.txt").into_os_string(),
        "--dispatcher-url".into(),
        CLOSED_URL.into(),
    ] as [std::ffi::OsString; 10])
    .expect("load tester flags");
    match cli.command {
        load_tester::Command::Serve(config) => config,
        load_tester::Command::Run(_) | load_tester::Command::Report(_) => {
            unreachable!("parsed `serve`")
        }
    }
}

/// Each service's router, as its server builds it.
pub struct Routers {
    pub inference: inference::AppState,
    pub dispatcher: dispatcher::AppState,
    pub load_tester: Router,
    pub autoscaler: Router,
}

impl Routers {
    pub fn new() -> Self {
        let inference = inference::AppState::with_classifier(&inference_config(), classifier())
            .expect("inference state");
        let settings = dispatcher_config().validate().expect("dispatcher settings");
        let dispatcher = dispatcher::AppState::new(settings).expect("dispatcher state");
        Self {
            inference,
            dispatcher,
            load_tester: load_tester::server::test_app(load_tester_config()),
            autoscaler: autoscaler::app(autoscaler::AppState {
                handle: autoscaler::ControllerHandle::new().expect("autoscaler metrics"),
                access: autoscaler::ControlAccess::Token(TOKEN.into()),
            }),
        }
    }

    pub fn router(&self, service: Service) -> Router {
        match service {
            Service::Inference => inference::app(self.inference.clone()),
            Service::Dispatcher => dispatcher::app(self.dispatcher.clone()),
            Service::LoadTester => self.load_tester.clone(),
            Service::Autoscaler => self.autoscaler.clone(),
        }
    }
}

/// A deployment that stays at one replica: the autoscaler's HTTP side is under test here, not
/// its scaling (which needs a cluster or the demo's pool).
struct OneReplica;

impl ScaleTarget for OneReplica {
    fn describe(&self) -> String {
        "one replica".into()
    }
    async fn current_replicas(&self) -> Result<u32, TargetError> {
        Ok(1)
    }
    async fn scale_to(&self, _: u32) -> Result<(), TargetError> {
        Ok(())
    }
}

/// The four services on `127.0.0.1:0`, each started by its crate's entry point.
pub struct Servers {
    pub addrs: Vec<(Service, SocketAddr)>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Servers {
    pub async fn start() -> Self {
        let stop = CancellationToken::new();
        let mut addrs = Vec::new();
        let mut tasks = Vec::new();
        let bind = || async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("address");
            (listener, addr)
        };

        let (listener, addr) = bind().await;
        addrs.push((Service::Inference, addr));
        tasks.push(tokio::spawn(inference::run_with_classifier(
            listener,
            inference_config(),
            classifier(),
            stop.clone().cancelled_owned(),
        )));

        let (listener, dispatcher_addr) = bind().await;
        addrs.push((Service::Dispatcher, dispatcher_addr));
        tasks.push(tokio::spawn(dispatcher::run(
            listener,
            dispatcher_config(),
            stop.clone().cancelled_owned(),
        )));

        let (listener, addr) = bind().await;
        addrs.push((Service::LoadTester, addr));
        tasks.push(tokio::spawn(load_tester::run(
            listener,
            load_tester_config(),
            stop.clone().cancelled_owned(),
        )));

        // The autoscaler reads the real dispatcher's /metrics.
        let (listener, addr) = bind().await;
        addrs.push((Service::Autoscaler, addr));
        let source = ScrapeSource::new(
            format!("http://{dispatcher_addr}/metrics"),
            InferenceTargets::None,
            Duration::from_secs(2),
        )
        .expect("scrape source");
        let settings = ControllerSettings::new(PolicySpec::Hpa, Tuning::default());
        tasks.push(tokio::spawn(autoscaler::run_with(
            listener,
            settings,
            autoscaler::ControlAccess::Token(TOKEN.into()),
            source,
            OneReplica,
            stop.clone().cancelled_owned(),
        )));

        Self { addrs, stop, tasks }
    }

    /// Stops every server and checks that each one's entry point returned `Ok`.
    pub async fn stop(self) {
        self.stop.cancel();
        let deadline = Instant::now() + Duration::from_secs(30);
        for ((service, _), task) in self.addrs.iter().zip(self.tasks) {
            let left = deadline.saturating_duration_since(Instant::now());
            let result = tokio::time::timeout(left, task)
                .await
                .unwrap_or_else(|_| panic!("{service} did not stop"));
            result
                .expect("server task")
                .unwrap_or_else(|err| panic!("{service} failed: {err:#}"));
        }
    }
}

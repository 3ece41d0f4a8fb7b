//! One row of the contract table, what it expects, and the checks every answer must pass.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use harness_core::ApiErrorBody;
use harness_core::oip::{ErrorBody, InferenceResponse, top_label};
use harness_core::wire::InferResponse;
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::services::Service;

/// What the documentation promises for a row.
#[derive(Debug, Clone)]
pub enum Expect {
    /// A 4xx with this stable code in `{"error":{"code","message"}}` and a message.
    Refused(StatusCode, &'static str),
    /// A documented success (the dispatcher queues base64 it never decodes).
    Accepted(StatusCode),
    /// 200 with the same top-1 label as the original photo.
    SameLabel(String),
    /// 200 with top-k probabilities (a synthetic image has no "right" class).
    Classified,
    /// A 4xx on a v2 route: `{"error":"message"}` with a message.
    V2Refused(StatusCode),
    /// A v2 inference answer (200) whose logits give this label's class first.
    V2Label(String),
}

/// One hostile request to one service.
pub struct Row {
    pub service: Service,
    pub case: &'static str,
    pub request: Request<Body>,
    pub expect: Expect,
}

impl Row {
    pub fn new(
        service: Service,
        case: &'static str,
        request: Request<Body>,
        expect: Expect,
    ) -> Self {
        Self {
            service,
            case,
            request,
            expect,
        }
    }
}

/// What came back for a row, for the printed table.
pub struct Outcome {
    pub status: StatusCode,
    pub code: Option<String>,
    pub elapsed: Duration,
}

/// Sends `row` through `router` and checks the answer against the row's expectation and the
/// rules every answer follows: never a 5xx, and every error in the project's shape with a
/// message. A panicking handler fails the test (no `CatchPanicLayer` in the load tester) or
/// comes back as a 500 (the others).
pub async fn run(router: Router, row: Row) -> Result<Outcome, String> {
    let what = format!(
        "{} {} {} [{}]",
        row.service,
        row.request.method(),
        row.request.uri().path(),
        row.case
    );
    let v2 = row.request.uri().path().starts_with("/v2");
    let started = Instant::now();
    let response = router
        .oneshot(row.request)
        .await
        .map_err(|err| format!("{what}: {err}"))?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|err| format!("{what}: reading the body: {err}"))?
        .to_bytes();
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&bytes);
    let shown: String = text.chars().take(300).collect();
    let fail = |why: String| Err(format!("{what}: {why}; got {status} {shown}"));
    if status.is_server_error() {
        return fail("a 5xx".into());
    }
    let code = if status.is_client_error() && v2 {
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) if body.error.trim().is_empty() => {
                return fail("an empty error message".into());
            }
            Ok(_) => None,
            Err(err) => return fail(format!("not the v2 error shape ({err})")),
        }
    } else if status.is_client_error() {
        match serde_json::from_slice::<ApiErrorBody>(&bytes) {
            Ok(body) if body.error.message.trim().is_empty() => {
                return fail("an empty error message".into());
            }
            Ok(body) => Some(body.error.code),
            Err(err) => return fail(format!("not the error shape ({err})")),
        }
    } else {
        None
    };
    let outcome = Outcome {
        status,
        code: code.clone(),
        elapsed,
    };
    match row.expect {
        Expect::Refused(want, want_code) => {
            if (status, code.as_deref()) != (want, Some(want_code)) {
                return fail(format!("expected {want} {want_code}"));
            }
        }
        Expect::Accepted(want) if status != want => return fail(format!("expected {want}")),
        Expect::Accepted(_) => {}
        Expect::SameLabel(label) => {
            let top1 = predictions(status, &bytes).map_err(|why| format!("{what}: {why}"))?;
            if top1 != label {
                return fail(format!("top-1 {top1:?}, the original photo's is {label:?}"));
            }
        }
        Expect::Classified => {
            predictions(status, &bytes).map_err(|why| format!("{what}: {why}"))?;
        }
        Expect::V2Refused(want) if status != want => return fail(format!("expected {want}")),
        Expect::V2Refused(_) => {}
        Expect::V2Label(label) => {
            let top1 = v2_label(status, &bytes).map_err(|why| format!("{what}: {why}"))?;
            if top1 != label {
                return fail(format!("top-1 {top1:?}, the original photo's is {label:?}"));
            }
        }
    }
    Ok(outcome)
}

/// The label of a v2 answer's logits (200, FP32 `[1, 1000]`), by the labels file.
pub fn v2_label(status: StatusCode, body: &[u8]) -> Result<String, String> {
    if status != StatusCode::OK {
        return Err(format!(
            "expected 200, got {status} {}",
            String::from_utf8_lossy(body)
        ));
    }
    let response = InferenceResponse::decode(body, None).map_err(|err| err.to_string())?;
    let index: usize = top_label(&response, None)
        .and_then(|i| i.parse().ok())
        .ok_or_else(|| format!("no logits in {response:?}"))?;
    let labels =
        std::fs::read_to_string(crate::corpus::repo("inference/model/imagenet-labels.txt"))
            .map_err(|err| err.to_string())?;
    labels
        .lines()
        .nth(index)
        .map(|l| l.trim().to_owned())
        .ok_or_else(|| format!("class {index} has no label"))
}

/// Checks a classification (200, five probabilities, sorted, summing to at most 1) and returns
/// its top-1 label.
pub fn predictions(status: StatusCode, body: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(body);
    if status != StatusCode::OK {
        return Err(format!("expected 200, got {status} {text}"));
    }
    let response: InferResponse =
        serde_json::from_slice(body).map_err(|err| format!("not an InferResponse: {err}"))?;
    let scores: Vec<f32> = response.predictions.iter().map(|p| p.score).collect();
    let sum: f32 = scores.iter().sum();
    let sorted = scores.windows(2).all(|w| w[0] >= w[1]);
    let in_range = scores.iter().all(|s| *s > 0.0 && *s <= 1.0);
    if scores.len() != 5 || !sorted || !in_range || sum > 1.0 + 1e-4 {
        return Err(format!(
            "five sorted probabilities summing to ≤ 1: {scores:?}"
        ));
    }
    Ok(response.predictions[0].label.clone())
}

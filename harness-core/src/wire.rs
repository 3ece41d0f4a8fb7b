//! Request and response bodies of the HTTP contract between the services.
//!
//! All JSON is camelCase. Times on the wire are Unix epoch milliseconds (`f64`), durations are
//! milliseconds (`f64`), so that scripts in any language can read them without a date parser.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use crate::outcome::Outcome;

/// Milliseconds since the Unix epoch, the time format of every record on the wire.
pub fn unix_millis(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
        * 1000.0
}

/// `unix_millis(SystemTime::now())`.
pub fn now_unix_millis() -> f64 {
    unix_millis(SystemTime::now())
}

// ---------------------------------------------------------------- inference: POST /infer

/// `POST /infer` JSON body. A raw body with `Content-Type: image/*` is accepted too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InferRequest {
    /// Base64 (standard or URL-safe alphabet), optionally behind a `data:image/...;base64,` prefix.
    pub image: String,
}

/// `POST /infer` 200 body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferResponse {
    /// The top-k classes, most probable first.
    pub predictions: Vec<Prediction>,
    /// The model's name (file stem unless configured).
    pub model: String,
    pub timing_ms: StageTimings,
}

/// One class and its softmax probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prediction {
    pub label: String,
    pub class_id: u32,
    pub score: f32,
}

/// Where the time of one `/infer` request went, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageTimings {
    pub decode: f64,
    pub preprocess: f64,
    pub inference: f64,
    pub total: f64,
}

// ---------------------------------------------------------------- dispatcher: POST /enqueue

/// `POST /enqueue` body. Two shapes are accepted: `{"image":"<b64>","id":"optional"}` and the
/// original Node harness's `{"message":{"imageBase64":"<b64>"}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnqueueRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<LegacyMessage>,
}

/// The body shape of the reference harness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LegacyMessage {
    pub image_base64: String,
}

/// Why an [`EnqueueRequest`] has no usable image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueShapeError {
    /// Neither `image` nor `message.imageBase64` was given.
    MissingImage,
    /// Both shapes were given at once; which one is meant is ambiguous.
    AmbiguousImage,
}

impl EnqueueRequest {
    /// The request in the current shape.
    pub fn new(image: impl Into<String>, id: Option<String>) -> Self {
        Self {
            image: Some(image.into()),
            id,
            message: None,
        }
    }

    /// Splits the body into the base64 image and the optional client id, whichever shape it has.
    pub fn into_parts(self) -> Result<(String, Option<String>), EnqueueShapeError> {
        match (self.image, self.message) {
            (Some(image), None) => Ok((image, self.id)),
            (None, Some(message)) => Ok((message.image_base64, self.id)),
            (None, None) => Err(EnqueueShapeError::MissingImage),
            (Some(_), Some(_)) => Err(EnqueueShapeError::AmbiguousImage),
        }
    }
}

/// `POST /enqueue` 202 body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnqueueResponse {
    pub id: String,
    /// Items in the queue right after this one was added.
    pub queue_length: usize,
    /// The dispatcher instance that holds the item (see [`DispatcherStats::instance_id`]).
    #[serde(default)]
    pub instance_id: String,
}

// ---------------------------------------------------------------- load tester: POST /storeLatency

/// What happened to one dispatched item, reported by the dispatcher to the load tester.
///
/// `latencyMs` = `queueWaitMs` + time spent on inference attempts (including retries), i.e.
/// completion time − enqueue time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencyRecord {
    pub id: String,
    pub enqueued_at_ms: f64,
    /// When the first attempt was sent upstream; `None` if the item never left the queue.
    pub dispatched_at_ms: Option<f64>,
    pub completed_at_ms: f64,
    pub queue_wait_ms: f64,
    /// Time from first dispatch to completion; `None` if never dispatched.
    pub inference_ms: Option<f64>,
    pub latency_ms: f64,
    pub attempts: u32,
    /// `ok` or an error code (`upstream_timeout`, `shutdown`, an inference 4xx code, ...).
    pub outcome: Outcome,
    /// The last upstream HTTP status, if any response arrived.
    pub http_status: Option<u16>,
    /// Top-1 label on success.
    pub label: Option<String>,
    /// The inference endpoint of the last attempt.
    pub endpoint: Option<String>,
}

impl LatencyRecord {
    pub fn is_ok(&self) -> bool {
        self.outcome.is_ok()
    }
}

/// `POST /storeLatency` body: one record or an array of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LatencyBatch {
    Many(Vec<LatencyRecord>),
    One(Box<LatencyRecord>),
}

impl LatencyBatch {
    pub fn into_vec(self) -> Vec<LatencyRecord> {
        match self {
            LatencyBatch::Many(v) => v,
            LatencyBatch::One(r) => vec![*r],
        }
    }
}

/// `POST /storeLatency` 200 body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreLatencyResponse {
    /// Records stored by this call.
    pub stored: usize,
    /// Records whose id matched no request sent by the current run (kept, counted apart).
    pub unmatched: usize,
}

// ---------------------------------------------------------------- dispatcher: GET /records

/// `GET /records?runId=…&after=…` on the dispatcher: the records of one run the caller has not
/// acknowledged yet, oldest first. The caller acknowledges everything up to `after` by asking
/// for what follows it; until then the dispatcher keeps (and may hand out again) what it sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordsPage {
    pub records: Vec<LatencyRecord>,
    /// Pass this as `after` in the next request (it acknowledges `records`).
    pub cursor: u64,
    /// More records of this run are waiting beyond `limit`: ask again at once.
    pub more: bool,
    /// Records of this run the dispatcher had to drop, by reason, since it started.
    pub dropped: DroppedRecords,
    /// The dispatcher instance answering (see [`DispatcherStats::instance_id`]).
    #[serde(default)]
    pub instance_id: String,
}

/// Latency records a dispatcher dropped before anyone collected them, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DroppedRecords {
    /// The outbox was full (`--outbox-capacity` records or `--outbox-max-bytes`).
    pub capacity: u64,
    /// Nobody collected them within `--record-retention`.
    pub retention: u64,
    /// The report URL refused them with a 4xx.
    pub refused: u64,
    /// Still undelivered when the dispatcher stopped.
    pub shutdown: u64,
}

impl DroppedRecords {
    pub fn total(&self) -> u64 {
        self.capacity + self.retention + self.refused + self.shutdown
    }

    /// `(reason, count)` for every reason, in a fixed order.
    pub fn by_reason(&self) -> [(DropReason, u64); 4] {
        [
            (DropReason::Capacity, self.capacity),
            (DropReason::Retention, self.retention),
            (DropReason::Refused, self.refused),
            (DropReason::Shutdown, self.shutdown),
        ]
    }

    pub fn add(&mut self, reason: DropReason, n: u64) {
        let slot = match reason {
            DropReason::Capacity => &mut self.capacity,
            DropReason::Retention => &mut self.retention,
            DropReason::Refused => &mut self.refused,
            DropReason::Shutdown => &mut self.shutdown,
        };
        *slot += n;
    }
}

/// Why a dispatcher dropped latency records (the `reason` label of
/// `dispatcher_report_dropped_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    Capacity,
    Retention,
    Refused,
    Shutdown,
}

impl DropReason {
    pub const ALL: [DropReason; 4] = [
        DropReason::Capacity,
        DropReason::Retention,
        DropReason::Refused,
        DropReason::Shutdown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Capacity => "capacity",
            DropReason::Retention => "retention",
            DropReason::Refused => "refused",
            DropReason::Shutdown => "shutdown",
        }
    }
}

// ---------------------------------------------------------------- dispatcher: GET /stats

/// `GET /stats` on the dispatcher: a JSON snapshot the load tester samples during a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DispatcherStats {
    /// Random id drawn when the dispatcher process started (32 hex digits). The queue is in
    /// memory: a new id means a new process, and whatever the earlier one held is lost. Empty
    /// from dispatchers older than this field.
    #[serde(default)]
    pub instance_id: String,
    pub queue_length: usize,
    pub queue_bytes: usize,
    pub queue_capacity: usize,
    pub queue_max_bytes: usize,
    /// Items per second the drain aims for.
    pub drain_rate: f64,
    pub max_in_flight_per_endpoint: usize,
    /// False once shutdown has begun.
    pub accepting: bool,
    pub enqueued_total: u64,
    /// Rejections at `/enqueue` by reason (`queue_full`, `invalid_base64`, ...).
    pub rejected_total: BTreeMap<String, u64>,
    /// Finished items by outcome (`ok` or an error code).
    pub completed_total: BTreeMap<String, u64>,
    pub in_flight: usize,
    pub endpoints: Vec<EndpointStats>,
}

impl DispatcherStats {
    /// Endpoints currently taking traffic: the replica count as the dispatcher sees it.
    pub fn ready_endpoints(&self) -> usize {
        self.endpoints
            .iter()
            .filter(|e| e.state == EndpointState::Ready)
            .count()
    }
}

/// One inference endpoint as the dispatcher sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStats {
    pub url: String,
    pub state: EndpointState,
    pub in_flight: usize,
    pub completed_total: u64,
    pub failed_total: u64,
}

/// Health of an endpoint in the dispatcher's balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EndpointState {
    /// Takes traffic.
    Ready,
    /// Failed recently; waiting before it is probed again.
    Ejected,
    /// Known but not (yet) answering `/readyz` with 200.
    NotReady,
}

impl EndpointState {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointState::Ready => "ready",
            EndpointState::Ejected => "ejected",
            EndpointState::NotReady => "not_ready",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn enqueue_accepts_both_shapes() {
        let new: EnqueueRequest =
            serde_json::from_value(json!({"image": "aGk=", "id": "a"})).unwrap();
        assert_eq!(new.into_parts(), Ok(("aGk=".into(), Some("a".into()))));
        let old: EnqueueRequest =
            serde_json::from_value(json!({"message": {"imageBase64": "aGk="}})).unwrap();
        assert_eq!(old.into_parts(), Ok(("aGk=".into(), None)));
        let none: EnqueueRequest = serde_json::from_value(json!({"id": "x"})).unwrap();
        assert_eq!(none.into_parts(), Err(EnqueueShapeError::MissingImage));
        let both: EnqueueRequest =
            serde_json::from_value(json!({"image": "aGk=", "message": {"imageBase64": "aGk="}}))
                .unwrap();
        assert_eq!(both.into_parts(), Err(EnqueueShapeError::AmbiguousImage));
        assert!(serde_json::from_value::<EnqueueRequest>(json!({"img": "x"})).is_err());
    }

    #[test]
    fn latency_batch_takes_one_or_many_in_camel_case() {
        let record = json!({
            "id": "r1", "enqueuedAtMs": 1.0, "dispatchedAtMs": 2.0, "completedAtMs": 5.0,
            "queueWaitMs": 1.0, "inferenceMs": 3.0, "latencyMs": 4.0, "attempts": 1,
            "outcome": "ok", "httpStatus": 200, "label": "espresso", "endpoint": null
        });
        let one: LatencyBatch = serde_json::from_value(record.clone()).unwrap();
        assert_eq!(one.into_vec().len(), 1);
        let many: LatencyBatch = serde_json::from_value(json!([record.clone(), record])).unwrap();
        let many = many.into_vec();
        assert_eq!(many.len(), 2);
        assert!(many[0].is_ok());
        assert_eq!(many[0].label.as_deref(), Some("espresso"));
    }

    #[test]
    fn infer_response_is_camel_case() {
        let body = InferResponse {
            predictions: vec![Prediction {
                label: "espresso".into(),
                class_id: 967,
                score: 0.5,
            }],
            model: "m".into(),
            timing_ms: StageTimings::default(),
        };
        let v = serde_json::to_value(body).unwrap();
        assert_eq!(v["predictions"][0]["classId"], 967);
        assert!(v["timingMs"]["preprocess"].is_number());
    }
}

//! The two protocols the dispatcher speaks to its upstream: this project's inference service
//! (`POST /infer` with `{"image": base64}`, `GET /readyz`) and any Open Inference Protocol (KServe
//! v2) server (Triton, KServe runtimes, MLServer): the image as the BYTES input `--v2-input` of
//! `POST /v2/models/{m}/infer`, readiness from `GET /v2/models/{m}/ready`.
//!
//! This module builds an item's request body once and turns an answer into an [`Attempt`]; the
//! retry, ejection and outcome rules of the `upstream` module are the same for both.
//!
//! v2 answers map to outcomes like the harness's: 503, 429 and 408 are retried elsewhere
//! (`upstream_unavailable`), other 5xx too (`upstream_server_error`); a 4xx is final, its
//! outcome the `{"error":"message"}` itself when that is already a short snake_case code, else
//! `v2_<status>` (v2 messages are prose: a label set bounded by status codes stays small).

use bytes::Bytes;
use harness_core::ApiErrorBody;
use harness_core::image_payload;
use harness_core::oip::{self, InferenceRequest, InferenceResponse, RequestedOutput, Tensor};
use harness_core::wire::{InferResponse, Outcome};
use reqwest::StatusCode;

use crate::balancer::EndpointPaths;

/// Longest error code taken over from an upstream response as an outcome label.
const MAX_CODE_LEN: usize = 64;

/// `--upstream-protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ProtocolKind {
    /// This project's inference service: `POST /infer`, `GET /readyz`.
    #[default]
    Harness,
    /// Open Inference Protocol (KServe v2 REST).
    V2,
}

/// `--v2-bytes`: how the image travels in the BYTES input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum V2Bytes {
    /// The decoded image after the JSON, with the binary tensor extension (Triton).
    #[default]
    Binary,
    /// The base64 text in the JSON with `"content_type":"base64"` (MLServer).
    Base64,
}

/// The upstream protocol with its settings, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum UpstreamProtocol {
    #[default]
    Harness,
    V2(V2Upstream),
}

/// Settings of a v2 upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Upstream {
    pub model: String,
    pub bytes: V2Bytes,
    /// Name of the BYTES input the image goes to.
    pub input: String,
    /// An output to ask for as a top-1 classification (Triton's extension); `None`: ask for
    /// every output.
    pub classification_output: Option<String>,
}

/// One item's request, built once and shared by its attempts.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    pub body: Bytes,
    pub content_type: &'static str,
    /// `Inference-Header-Content-Length`, when the body has a binary section.
    pub header_length: Option<usize>,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Ok {
        label: Option<String>,
    },
    /// Final failure with this outcome; the endpoint worked.
    Final {
        code: Outcome,
    },
    /// Worth trying elsewhere; the endpoint is ejected.
    Retry {
        code: Outcome,
    },
}

/// Why an item's request could not be built (its detail is logged; the outcome is `internal`
/// for what the dispatcher validated itself, `invalid_image` for an undecodable payload).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("the queued image is not UTF-8")]
    NotUtf8(#[source] std::str::Utf8Error),
    #[error("the queued image is not base64")]
    Payload(#[source] image_payload::PayloadError),
    #[error("cannot encode the request")]
    Json(#[source] serde_json::Error),
    #[error("cannot encode the v2 request")]
    Codec(#[source] oip::CodecError),
}

impl UpstreamProtocol {
    /// The paths endpoints are probed and sent to.
    pub fn paths(&self) -> EndpointPaths {
        match self {
            UpstreamProtocol::Harness => EndpointPaths::default(),
            UpstreamProtocol::V2(v2) => EndpointPaths {
                infer: oip::infer_path(&v2.model, None),
                ready: oip::ready_path(&v2.model, None),
            },
        }
    }

    /// The request of one queued image (base64 text, as `/enqueue` took it).
    pub fn request(&self, image: &[u8]) -> Result<UpstreamRequest, RequestError> {
        let image = std::str::from_utf8(image).map_err(RequestError::NotUtf8)?;
        match self {
            UpstreamProtocol::Harness => harness_request(image),
            UpstreamProtocol::V2(v2) => v2.request(image),
        }
    }

    /// Turns an answer into an attempt outcome.
    pub fn classify(
        &self,
        status: StatusCode,
        header_length: Option<usize>,
        body: &[u8],
    ) -> Attempt {
        if let Some(retry) = retryable(status) {
            return retry;
        }
        match self {
            UpstreamProtocol::Harness => classify_harness(status, body),
            UpstreamProtocol::V2(v2) => v2.classify(status, header_length, body),
        }
    }
}

/// `{"image":"<base64>"}` for `POST /infer`.
fn harness_request(image: &str) -> Result<UpstreamRequest, RequestError> {
    /// [`harness_core::wire::InferRequest`]'s shape, borrowing the queued image.
    #[derive(serde::Serialize)]
    struct InferBody<'a> {
        image: &'a str,
    }
    let body = serde_json::to_vec(&InferBody { image }).map_err(RequestError::Json)?;
    Ok(UpstreamRequest {
        body: Bytes::from(body),
        content_type: "application/json",
        header_length: None,
    })
}

impl V2Upstream {
    fn request(&self, image: &str) -> Result<UpstreamRequest, RequestError> {
        let input = match self.bytes {
            // Decoded once per item; the raw bytes follow the JSON.
            V2Bytes::Binary => {
                let raw = image_payload::decode(image).map_err(RequestError::Payload)?;
                Tensor::bytes(&self.input, vec![raw])
            }
            // The text as queued, less a `data:` prefix; URL-safe base64 is rewritten in the
            // standard alphabet, the only one a base64 content type promises.
            V2Bytes::Base64 => {
                let text = image_payload::strip_data_url(image).map_err(RequestError::Payload)?;
                let text = if text.bytes().any(|b| b == b'-' || b == b'_') {
                    let raw = image_payload::decode(text).map_err(RequestError::Payload)?;
                    image_payload::encode(&raw)
                } else {
                    text.to_owned()
                };
                Tensor::bytes_base64(&self.input, vec![text])
            }
        };
        let mut request = InferenceRequest::new(vec![input]);
        request.outputs = self
            .classification_output
            .as_ref()
            .map(|name| vec![RequestedOutput::classification(name, 1)]);
        match self.bytes {
            V2Bytes::Binary => {
                let message = request.encode_binary().map_err(RequestError::Codec)?;
                Ok(UpstreamRequest {
                    body: Bytes::from(message.body),
                    content_type: oip::binary::CONTENT_TYPE,
                    header_length: Some(message.header_length),
                })
            }
            V2Bytes::Base64 => Ok(UpstreamRequest {
                body: Bytes::from(serde_json::to_vec(&request).map_err(RequestError::Json)?),
                content_type: "application/json",
                header_length: None,
            }),
        }
    }

    fn classify(&self, status: StatusCode, header_length: Option<usize>, body: &[u8]) -> Attempt {
        match status {
            s if s.is_success() => match InferenceResponse::decode(body, header_length) {
                Ok(response) => Attempt::Ok {
                    label: oip::top_label(&response, self.classification_output.as_deref()),
                },
                Err(err) => {
                    tracing::debug!(%err, "unreadable v2 answer");
                    bad_response()
                }
            },
            s if s.is_client_error() => Attempt::Final {
                code: Outcome::Rejected(v2_error_code(status, body)),
            },
            _ => bad_response(),
        }
    }
}

/// The outcome code of a v2 error answer: its message when that is a well-formed code, else
/// `v2_<status>`.
pub fn v2_error_code(status: StatusCode, body: &[u8]) -> String {
    serde_json::from_slice::<oip::ErrorBody>(body)
        .ok()
        .map(|e| e.error)
        .filter(|m| well_formed(m))
        .unwrap_or_else(|| format!("v2_{}", status.as_u16()))
}

fn bad_response() -> Attempt {
    Attempt::Final {
        code: Outcome::UpstreamBadResponse,
    }
}

/// Statuses about the server, not the image: another endpoint may do better.
fn retryable(status: StatusCode) -> Option<Attempt> {
    match status {
        // Overload and slowness are about the pod, not the image.
        StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::TOO_MANY_REQUESTS
        | StatusCode::REQUEST_TIMEOUT => Some(Attempt::Retry {
            code: Outcome::UpstreamUnavailable,
        }),
        s if s.is_server_error() => Some(Attempt::Retry {
            code: Outcome::UpstreamServerError,
        }),
        _ => None,
    }
}

/// A harness inference answer.
fn classify_harness(status: StatusCode, body: &[u8]) -> Attempt {
    match status {
        s if s.is_success() => match serde_json::from_slice::<InferResponse>(body) {
            Ok(r) => Attempt::Ok {
                label: r.predictions.into_iter().next().map(|p| p.label),
            },
            Err(_) => bad_response(),
        },
        s if s.is_client_error() => Attempt::Final {
            code: error_code(body).map_or(Outcome::UpstreamRejected, Outcome::Rejected),
        },
        _ => bad_response(),
    }
}

/// The `error.code` of an inference error body, if it looks like one of our codes. Outcomes are
/// metric labels, so anything else is folded into one value to keep the label set bounded.
fn error_code(body: &[u8]) -> Option<String> {
    let code = serde_json::from_slice::<ApiErrorBody>(body)
        .ok()?
        .error
        .code;
    well_formed(&code).then_some(code)
}

fn well_formed(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_CODE_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests;

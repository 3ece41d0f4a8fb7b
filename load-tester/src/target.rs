//! What a run sends its requests to: the dispatcher (`POST /enqueue`, records come back later),
//! or a model server directly, this project's inference (`POST /infer`) or any Open Inference
//! Protocol (KServe v2) server (`POST /v2/models/{m}/infer`), whose answer decides each
//! request's fate at once.
//!
//! In the direct modes every image's request body is built once before the run (a send costs a
//! cheap clone), and an answer is read here into a [`DirectAnswer`]:
//! - 2xx with a readable answer: success, with its label (harness: the top prediction; v2: the
//!   rule of [`harness_core::oip::top_label`]);
//! - 429 and 503: refused for load, counted as `rejected`;
//! - any other status: `failed`. The failure code is the harness body's `error.code`, or for v2
//!   the `{"error":"message"}` when it is a short snake_case code, else `v2_<status>`
//!   (`http_<status>` for a harness answer without a code); a 2xx that cannot be read is
//!   `bad_response`.

use bytes::Bytes;
use harness_core::ApiErrorBody;
use harness_core::oip::{self, InferenceRequest, InferenceResponse, RequestedOutput, Tensor};
use harness_core::wire::InferResponse;
use http::StatusCode;
use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::base_url::endpoint;
use crate::image_pool::ImagePool;

/// Longest failure code taken from an answer as is.
const MAX_CODE_LEN: usize = 64;

/// `--target`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "camelCase")]
pub enum TargetKind {
    /// The dispatcher's `/enqueue`; latency records come back from it.
    #[default]
    Dispatcher,
    /// This project's inference service, `POST /infer`, directly.
    Infer,
    /// An Open Inference Protocol (KServe v2) server, directly.
    V2,
}

/// `--v2-bytes`: how the image travels in the v2 BYTES input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "camelCase")]
pub enum V2Bytes {
    /// Raw bytes after the JSON, with the binary tensor extension (Triton).
    #[default]
    Binary,
    /// Base64 text in the JSON with `"content_type":"base64"` (MLServer).
    Base64,
}

/// A v2 model and how to feed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Model {
    pub model: String,
    pub bytes: V2Bytes,
    /// Name of the BYTES input the image goes to.
    pub input: String,
    /// An output to ask for as a top-1 classification; `None`: every output.
    pub classification_output: Option<String>,
}

/// A model server a run load-tests directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectTarget {
    /// `POST <url>/infer`, readiness `GET <url>/readyz`.
    Infer { url: Url },
    /// `POST <url>/v2/models/{m}/infer`, readiness `GET <url>/v2/models/{m}/ready`.
    V2 { url: Url, model: V2Model },
}

/// The `target` object of `stats.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetInfo {
    pub kind: TargetKind,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
}

/// One image's request in a direct mode, built before the run.
#[derive(Debug, Clone)]
pub struct DirectRequest {
    pub body: Bytes,
    pub content_type: &'static str,
    /// `Inference-Header-Content-Length`, when the body has a binary section.
    pub header_length: Option<usize>,
}

/// What a direct answer came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectAnswer {
    Ok {
        label: Option<String>,
    },
    /// The server refused the request for load (429, 503).
    Rejected {
        code: String,
    },
    /// Any other answer that is not a success.
    Failed {
        code: String,
    },
}

impl DirectTarget {
    pub fn kind(&self) -> TargetKind {
        match self {
            DirectTarget::Infer { .. } => TargetKind::Infer,
            DirectTarget::V2 { .. } => TargetKind::V2,
        }
    }

    pub fn url(&self) -> &Url {
        match self {
            DirectTarget::Infer { url } | DirectTarget::V2 { url, .. } => url,
        }
    }

    pub fn info(&self) -> TargetInfo {
        TargetInfo {
            kind: self.kind(),
            url: self.url().to_string(),
            model_name: match self {
                DirectTarget::V2 { model, .. } => Some(model.model.clone()),
                DirectTarget::Infer { .. } => None,
            },
        }
    }

    /// Where requests are posted.
    pub fn infer_url(&self) -> Url {
        match self {
            DirectTarget::Infer { url } => endpoint(url, "infer"),
            DirectTarget::V2 { url, model } => endpoint(
                url,
                oip::infer_path(&model.model, None).trim_start_matches('/'),
            ),
        }
    }

    /// What the preflight asks (any HTTP answer will do).
    pub fn ready_url(&self) -> Url {
        match self {
            DirectTarget::Infer { url } => endpoint(url, "readyz"),
            DirectTarget::V2 { url, model } => endpoint(
                url,
                oip::ready_path(&model.model, None).trim_start_matches('/'),
            ),
        }
    }

    /// One request per image of the pool, in pool order.
    pub fn requests(&self, pool: &ImagePool) -> Result<Vec<DirectRequest>, oip::CodecError> {
        pool.images()
            .iter()
            .map(|image| self.request(&image.base64))
            .collect()
    }

    fn request(&self, image_base64: &str) -> Result<DirectRequest, oip::CodecError> {
        let json = |body: Vec<u8>| DirectRequest {
            body: Bytes::from(body),
            content_type: "application/json",
            header_length: None,
        };
        let DirectTarget::V2 { model, .. } = self else {
            let body = serde_json::json!({ "image": image_base64 });
            return Ok(json(body.to_string().into_bytes()));
        };
        let input = match model.bytes {
            V2Bytes::Binary => {
                let raw = harness_core::image_payload::decode(image_base64).map_err(|_| {
                    oip::CodecError::Base64 {
                        tensor: model.input.clone(),
                    }
                })?;
                Tensor::bytes(&model.input, vec![raw])
            }
            V2Bytes::Base64 => Tensor::bytes_base64(&model.input, vec![image_base64.to_owned()]),
        };
        let mut request = InferenceRequest::new(vec![input]);
        request.outputs = model
            .classification_output
            .as_ref()
            .map(|name| vec![RequestedOutput::classification(name, 1)]);
        Ok(match model.bytes {
            V2Bytes::Binary => {
                let message = request.encode_binary()?;
                DirectRequest {
                    body: Bytes::from(message.body),
                    content_type: oip::binary::CONTENT_TYPE,
                    header_length: Some(message.header_length),
                }
            }
            V2Bytes::Base64 => json(serde_json::to_vec(&request).map_err(oip::CodecError::Json)?),
        })
    }

    /// Reads an answer.
    pub fn read(
        &self,
        status: StatusCode,
        header_length: Option<usize>,
        body: &[u8],
    ) -> DirectAnswer {
        let v2 = matches!(self, DirectTarget::V2 { .. });
        if status.is_success() {
            let label = match self {
                DirectTarget::Infer { .. } => serde_json::from_slice::<InferResponse>(body)
                    .map(|r| r.predictions.into_iter().next().map(|p| p.label))
                    .ok(),
                DirectTarget::V2 { model, .. } => InferenceResponse::decode(body, header_length)
                    .map(|r| oip::top_label(&r, model.classification_output.as_deref()))
                    .ok(),
            };
            return match label {
                Some(label) => DirectAnswer::Ok { label },
                None => DirectAnswer::Failed {
                    code: "bad_response".into(),
                },
            };
        }
        let code = failure_code(v2, status, body);
        if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            DirectAnswer::Rejected { code }
        } else {
            DirectAnswer::Failed { code }
        }
    }
}

/// The code of an error answer: the harness's `error.code` or the v2 message when either is a
/// short snake_case code, else `http_<status>` (harness) or `v2_<status>` (v2).
fn failure_code(v2: bool, status: StatusCode, body: &[u8]) -> String {
    let code = if v2 {
        serde_json::from_slice::<oip::ErrorBody>(body)
            .ok()
            .map(|e| e.error)
    } else {
        serde_json::from_slice::<ApiErrorBody>(body)
            .ok()
            .map(|e| e.error.code)
    };
    let well_formed = |c: &String| {
        !c.is_empty()
            && c.len() <= MAX_CODE_LEN
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    code.filter(well_formed).unwrap_or_else(|| {
        let prefix = if v2 { "v2" } else { "http" };
        format!("{prefix}_{}", status.as_u16())
    })
}

#[cfg(test)]
mod tests;

//! What a client sends to `POST /infer`, and how it becomes image bytes.
//!
//! Two shapes are accepted: JSON `{"image": "<base64>"}` (`Content-Type: application/json`) and
//! the raw image (`Content-Type: image/*` or `application/octet-stream`). The extractor only
//! checks the cheap things on the async executor (content type, size, emptiness) and buffers the
//! body; parsing the JSON and decoding the base64 are CPU work on a large body, so they happen on
//! a worker, in [`InferBody::image_bytes`].
//!
//! The common body, `{"image":"<plain base64>"}`, takes a fast path: the payload is found with
//! a SIMD search for its closing quote, borrowed from the body (no JSON string is built) and
//! decoded with SIMD into the worker's reused buffer. Anything else (escapes, other keys, an
//! error to report) goes through `serde_json`, with the same result and the same error codes.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde_json::Value;

use crate::error::Error;
use crate::state::AppState;

/// How the body carries the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `{"image": "<base64>"}`.
    Json,
    /// The image file itself.
    Image,
}

/// A buffered `/infer` body whose content type has been checked.
#[derive(Debug, Clone)]
pub struct InferBody {
    pub kind: BodyKind,
    pub bytes: Bytes,
}

impl FromRequest<AppState> for InferBody {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let kind = body_kind(req.headers().get(header::CONTENT_TYPE))?;
        let bytes = buffered_body(req, state).await?;
        if bytes.is_empty() {
            return Err(Error::EmptyBody);
        }
        Ok(Self { kind, bytes })
    }
}

/// Buffers a request body within `--max-body-bytes`: a declared oversize body is refused before
/// any of it is read, a streamed one as soon as it passes the limit (413 either way). Shared by
/// `/infer` and the v2 inference.
pub async fn buffered_body(req: Request, state: &AppState) -> Result<Bytes, Error> {
    let limit = state.max_body_bytes();
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(Error::PayloadTooLarge { limit });
    }
    // `DefaultBodyLimit` (set by the router to the same limit) caps chunked bodies.
    Bytes::from_request(req, state)
        .await
        .map_err(|rejection| match rejection {
            BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                Error::PayloadTooLarge { limit }
            }
            other => Error::BodyRead(other),
        })
}

fn body_kind(content_type: Option<&header::HeaderValue>) -> Result<BodyKind, Error> {
    let Some(value) = content_type else {
        return Err(Error::UnsupportedMediaType("(none)".to_owned()));
    };
    let text = value.to_str().unwrap_or_default();
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(BodyKind::Json),
        "application/octet-stream" => Ok(BodyKind::Image),
        media if media.starts_with("image/") => Ok(BodyKind::Image),
        media if media.starts_with("application/") && media.ends_with("+json") => {
            Ok(BodyKind::Json)
        }
        _ => Err(Error::UnsupportedMediaType(text.to_owned())),
    }
}

impl InferBody {
    /// The image file's bytes: the raw body itself, or the JSON body's `image` decoded from
    /// base64 into `scratch` (cleared first; a worker reuses it from one request to the next).
    pub fn image_bytes<'a>(&'a self, scratch: &'a mut Vec<u8>) -> Result<&'a [u8], Error> {
        match self.kind {
            BodyKind::Image => Ok(&self.bytes),
            BodyKind::Json => {
                json_image(&self.bytes, scratch)?;
                Ok(scratch)
            }
        }
    }
}

/// Decodes the image of `{"image": "<base64>"}` into `out`.
fn json_image(body: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    match plain_payload(body) {
        Some(payload) => harness_core::image_payload::decode_into(payload, out)?,
        None => harness_core::image_payload::decode_into(&json_payload(body)?, out)?,
    }
    Ok(())
}

/// The fast path: `{"image":"<plain base64>"}` with JSON white space between the tokens.
/// `Some` only when [`json_payload`] would return the same string; `None` means "parse it
/// properly", never "invalid".
fn plain_payload(body: &[u8]) -> Option<&str> {
    // JSON's white space only (not `trim_ascii`, which also skips form feeds).
    fn skip(bytes: &[u8]) -> &[u8] {
        let start = bytes
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            .unwrap_or(bytes.len());
        &bytes[start..]
    }
    let rest = skip(body).strip_prefix(b"{")?;
    let rest = skip(rest).strip_prefix(b"\"image\"")?;
    let rest = skip(rest).strip_prefix(b":")?;
    let rest = skip(rest).strip_prefix(b"\"")?;
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    if rest[end] != b'"' {
        return None;
    }
    let (payload, rest) = (&rest[..end], &rest[end + 1..]);
    let rest = skip(rest).strip_prefix(b"}")?;
    if !skip(rest).is_empty() {
        return None;
    }
    // Only base64 symbols: no control character (which JSON would refuse), valid UTF-8.
    harness_core::image_payload::check_plain(payload)?;
    std::str::from_utf8(payload).ok()
}

/// Parses `{"image": "<base64>"}` strictly: one field, a string, nothing else.
fn json_payload(body: &[u8]) -> Result<String, Error> {
    let mut object: serde_json::Map<String, Value> =
        serde_json::from_slice(body).map_err(|err| match err.classify() {
            serde_json::error::Category::Data => {
                Error::InvalidRequest("the body must be a JSON object".to_owned())
            }
            _ => Error::InvalidJson(err),
        })?;
    let image = object.remove("image").ok_or(Error::MissingField("image"))?;
    if let Some(unknown) = object.keys().next() {
        return Err(Error::UnknownField(unknown.clone()));
    }
    let Value::String(payload) = image else {
        return Err(Error::InvalidRequest(
            "`image` must be a base64 string".to_owned(),
        ));
    };
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn content_types() {
        let kind = |v: &str| body_kind(Some(&HeaderValue::from_str(v).unwrap()));
        assert_eq!(kind("application/json").unwrap(), BodyKind::Json);
        assert_eq!(
            kind("Application/JSON; charset=utf-8").unwrap(),
            BodyKind::Json
        );
        assert_eq!(kind("image/jpeg").unwrap(), BodyKind::Image);
        assert_eq!(kind("application/octet-stream").unwrap(), BodyKind::Image);
        for bad in ["text/plain", "application/x-www-form-urlencoded", ""] {
            assert_eq!(kind(bad).unwrap_err().code(), "unsupported_media_type");
        }
        assert_eq!(
            body_kind(None).unwrap_err().code(),
            "unsupported_media_type"
        );
    }

    fn json_image(body: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = vec![1, 2, 3];
        super::json_image(body, &mut out).map(|()| out)
    }

    #[test]
    fn the_fast_path_takes_only_what_the_parser_would_take_alike() {
        for body in [
            &br#"{"image":"aGk="}"#[..],
            b" {\n \"image\" :\t\"aGk=\" }\r\n",
            br#"{"image":"aGk"}"#,
        ] {
            let fast = plain_payload(body).unwrap();
            assert_eq!(fast, json_payload(body).unwrap());
        }
        for body in [
            &br#"{"image":"a\u0047k="}"#[..],
            br#"{"image":"aGk=","id":1}"#,
            br#"{"image":"aGk="} x"#,
            b"{\x0c\"image\":\"aGk=\"}",
            br#"{"image":"data:image/png;base64,aGk="}"#,
            br#"{"image":""}"#,
            br#"{"image":"aGk=""#,
        ] {
            assert_eq!(
                plain_payload(body),
                None,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // An escaped payload goes the slow way, to the same bytes.
        assert_eq!(json_image(br#"{"image":"a\u0047k="}"#).unwrap(), b"hi");
    }

    #[test]
    fn json_bodies() {
        assert_eq!(json_image(br#"{"image":"aGk="}"#).unwrap(), b"hi");
        let cases: &[(&[u8], &str)] = &[
            (b"{", "invalid_json"),
            (b"not json", "invalid_json"),
            (b"[1,2]", "invalid_request"),
            (b"\"aGk=\"", "invalid_request"),
            (b"{}", "missing_field"),
            (br#"{"img":"aGk="}"#, "missing_field"),
            (br#"{"image":"aGk=","id":1}"#, "unknown_field"),
            (br#"{"image":42}"#, "invalid_request"),
            (br#"{"image":"***"}"#, "invalid_base64"),
            (br#"{"image":""}"#, "empty_image"),
            (
                br#"{"image":"data:text/plain;base64,aGk="}"#,
                "invalid_data_url",
            ),
        ];
        for (body, code) in cases {
            let err = json_image(body).unwrap_err();
            assert_eq!(
                err.code(),
                *code,
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
    }
}

//! The `/enqueue` body, parsed and checked without copying the image.
//!
//! The shapes and rules are those of [`harness_core::wire::EnqueueRequest`] (`{"image","id"}` or
//! the reference harness's `{"message":{"imageBase64"}}`), but the image is borrowed from the
//! request bytes and queued as a slice of them: a 100 KB payload is not copied into a new
//! `String` on the hot path.
//!
//! Two parsers share the work. [`fast`] takes the shape every client sends (an object with
//! `image` and maybe `id`, no escapes in them) in one SIMD search for the closing quote plus one
//! SIMD base64 check; it never refuses anything, it only declines. Whatever it declines
//! goes to the general serde parser, which also names every error. Tests (and a fuzz target)
//! check that whenever the fast parser accepts a body, the general one accepts it identically,
//! and that both read back the fields of any serialised `EnqueueRequest` (the typed contract).

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use harness_core::image_payload;
use harness_core::wire::EnqueueShapeError;
use serde::Deserialize;
use serde::de::{Deserializer, Visitor};

use crate::error::Error;

pub mod fast;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EnqueueBody<'a> {
    #[serde(borrow, default)]
    image: Option<Text<'a>>,
    #[serde(default)]
    id: Option<String>,
    #[serde(borrow, default)]
    message: Option<LegacyMessage<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyMessage<'a> {
    #[serde(borrow)]
    image_base64: Text<'a>,
}

/// A JSON string borrowed from the input when it has no escapes (every base64 payload), owned
/// otherwise. (serde's own `Cow` support does not borrow inside an `Option`.)
#[derive(Debug)]
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// A parsed `/enqueue` body: the base64 image (validated later) and the client's id, if any.
#[derive(Debug)]
pub struct Enqueue {
    /// UTF-8 text, a slice of the request body when it could be borrowed.
    pub image: Bytes,
    pub id: Option<String>,
}

/// Parses a body in either shape and checks its base64 payload (alphabet, padding, length;
/// never decoded here).
pub fn parse(body: &Bytes) -> Result<Enqueue, Error> {
    if let Some(parsed) = fast::parse(body) {
        return Ok(parsed);
    }
    parse_general(body)
}

/// The serde parser: every shape, every error.
pub fn parse_general(body: &Bytes) -> Result<Enqueue, Error> {
    let parsed: EnqueueBody<'_> = serde_json::from_slice(body).map_err(Error::InvalidJson)?;
    let image = match (parsed.image, parsed.message) {
        (Some(image), None) => image,
        (None, Some(message)) => message.image_base64,
        (None, None) => return Err(EnqueueShapeError::MissingImage.into()),
        (Some(_), Some(_)) => return Err(EnqueueShapeError::AmbiguousImage.into()),
    };
    image_payload::validate(&image.0)?;
    let image = match image.0 {
        Cow::Borrowed(text) => body.slice_ref(text.as_bytes()),
        Cow::Owned(text) => Bytes::from(text),
    };
    Ok(Enqueue {
        image,
        id: parsed.id,
    })
}

#[cfg(test)]
mod tests;

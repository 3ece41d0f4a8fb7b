//! The `/enqueue` body, parsed and checked without copying the image.
//!
//! The shapes and rules are those of [`harness_core::wire::EnqueueRequest`] (`{"image","id"}` or
//! the reference harness's `{"message":{"imageBase64"}}`), but the image is borrowed from the
//! request bytes and queued as a slice of them: a 100 KB payload is not copied into a new
//! `String` on the hot path. A test checks that both parsers accept and refuse the same bodies.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use harness_core::image_payload;
use harness_core::wire::EnqueueShapeError;
use serde::Deserialize;
use serde::de::{Deserializer, Visitor};

use crate::error::Error;

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
    let parsed: EnqueueBody<'_> =
        serde_json::from_slice(body).map_err(|e| Error::InvalidJson(e.to_string()))?;
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
mod tests {
    use super::*;
    use harness_core::wire::EnqueueRequest;

    #[test]
    fn accepts_and_refuses_exactly_like_the_wire_type() {
        let bodies = [
            r#"{"image":"aGk=","id":"a"}"#,
            r#"{"image":"aGk*"}"#,
            r#"{"image":""}"#,
            r#"{"image":"aGk="}"#,
            r#"{"message":{"imageBase64":"aGk="}}"#,
            r#"{"message":{"imageBase64":"aGk=","extra":1},"id":"x"}"#,
            r#"{"image":"a\/b="}"#,
            r#"{"id":"x"}"#,
            r#"{"image":"aGk=","message":{"imageBase64":"aGk="}}"#,
            r#"{"img":"aGk="}"#,
            r#"{"image":5}"#,
            r#"{"image":null}"#,
            r#"{"image":"aGk=","id":null}"#,
            r#"[]"#,
            r#"{"image":"aGk="#,
        ];
        for body in bodies {
            let ours = parse(&Bytes::from_static(body.as_bytes()))
                .map(|e| (String::from_utf8(e.image.to_vec()).ok(), e.id))
                .map_err(|e| e.code());
            let reference = serde_json::from_str::<EnqueueRequest>(body)
                .map_err(|_| "invalid_json")
                .and_then(|r| r.into_parts().map_err(|e| Error::from(e).code()))
                .and_then(|(image, id)| match image_payload::validate(&image) {
                    Ok(_) => Ok((Some(image), id)),
                    Err(e) => Err(e.code()),
                });
            assert_eq!(ours, reference, "{body}");
        }
    }

    #[test]
    fn an_unescaped_image_is_a_slice_of_the_body() {
        let body = Bytes::from_static(br#"{"image":"aGVsbG8=","id":"a"}"#);
        let parsed = parse(&body).expect("valid");
        let offset = parsed.image.as_ptr() as usize - body.as_ptr() as usize;
        assert_eq!(&body[offset..offset + parsed.image.len()], b"aGVsbG8=");
    }
}

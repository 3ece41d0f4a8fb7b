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
//! check that whenever the fast parser accepts a body, the general one accepts it identically.

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
    if let Some(parsed) = fast::parse(body) {
        return Ok(parsed);
    }
    parse_general(body)
}

/// The serde parser: every shape, every error.
pub fn parse_general(body: &Bytes) -> Result<Enqueue, Error> {
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

/// The fast path: `{"image":"<plain base64>"}` with an optional `"id"` (a string without
/// escapes, or `null`), keys in any order, JSON white space anywhere between tokens.
pub mod fast {
    use bytes::Bytes;
    use harness_core::image_payload;

    use super::Enqueue;

    /// `Some` only when [`super::parse_general`] would accept the body with the same result;
    /// `None` means "ask the general parser", never "invalid".
    pub fn parse(body: &Bytes) -> Option<Enqueue> {
        let mut cursor = Cursor { bytes: body, at: 0 };
        cursor.expect(b'{')?;
        let (mut image, mut id) = (None, None);
        loop {
            let key = cursor.string()?;
            cursor.expect(b':')?;
            match key {
                b"image" if image.is_none() => {
                    let payload = cursor.string()?;
                    image_payload::check_plain(payload)?;
                    image = Some(body.slice_ref(payload));
                }
                b"id" if id.is_none() => id = Some(cursor.id()?),
                _ => return None,
            }
            match cursor.token()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
        cursor.skip_whitespace();
        if cursor.at != body.len() {
            return None;
        }
        Some(Enqueue {
            image: image?,
            id: id.flatten(),
        })
    }

    struct Cursor<'a> {
        bytes: &'a [u8],
        at: usize,
    }

    impl<'a> Cursor<'a> {
        fn skip_whitespace(&mut self) {
            while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
                self.at += 1;
            }
        }

        /// The next byte after white space.
        fn token(&mut self) -> Option<u8> {
            self.skip_whitespace();
            let byte = *self.bytes.get(self.at)?;
            self.at += 1;
            Some(byte)
        }

        fn expect(&mut self, byte: u8) -> Option<()> {
            (self.token()? == byte).then_some(())
        }

        /// A string's raw contents; `None` if it has an escape (the general parser decodes
        /// those). The contents are not checked here: callers check what they keep.
        fn string(&mut self) -> Option<&'a [u8]> {
            self.expect(b'"')?;
            let rest = &self.bytes[self.at..];
            let end = memchr::memchr2(b'"', b'\\', rest)?;
            if rest[end] != b'"' {
                return None;
            }
            self.at += end + 1;
            Some(&rest[..end])
        }

        /// `null` or a string that is valid UTF-8 without control characters (which JSON
        /// requires to be escaped).
        fn id(&mut self) -> Option<Option<String>> {
            self.skip_whitespace();
            if self.bytes[self.at..].starts_with(b"null") {
                self.at += 4;
                return Some(None);
            }
            let raw = self.string()?;
            if raw.iter().any(|&b| b < 0x20) {
                return None;
            }
            std::str::from_utf8(raw).ok().map(|id| Some(id.to_owned()))
        }
    }
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
            r#" { "id" : "b" , "image" : "aGk=" } "#,
            r#"{"image":"aGk=","image":"aGk="}"#,
            r#"{"image":"aGk=","id":"\u0001"}"#,
            r#"{"image":"data:image/png;base64,aGk="}"#,
            r#"{"image":"aGk=","id":nul}"#,
            r#"{"image":"aGk=","id":nullx}"#,
            r#"{"image":"aGk="}x"#,
            r#"{"image":"aGk=",}"#,
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

    /// Parsed results in a comparable form.
    fn outcome(parsed: Result<Enqueue, Error>) -> Result<(Vec<u8>, Option<String>), &'static str> {
        parsed
            .map(|e| (e.image.to_vec(), e.id))
            .map_err(|e| e.code())
    }

    #[test]
    fn the_fast_path_takes_what_clients_send_and_declines_the_rest() {
        let taken = [
            r#"{"image":"aGk="}"#,
            r#"{"image":"aGk=","id":"req-1"}"#,
            r#"{"id":"req-1","image":"aGk="}"#,
            "{\"image\": \"aGk=\", \"id\": null}\n",
            "{\"image\":\"a-_b\",\"id\":\"\u{e9}t\u{e9}\"}",
        ];
        for body in taken {
            let body = Bytes::from_static(body.as_bytes());
            let fast = fast::parse(&body).map(|parsed| outcome(Ok(parsed)));
            assert_eq!(fast, Some(outcome(parse_general(&body))), "{body:?}");
        }
        let declined = [
            r#"{"image":"a\/b="}"#,
            r#"{"image":"data:image/png;base64,aGk="}"#,
            r#"{"message":{"imageBase64":"aGk="}}"#,
            r#"{"image":"aGk=","extra":1}"#,
            r#"{"image":"aGk=","id":"a\"b"}"#,
            r#"{"image":"aGk=","id":7}"#,
            r#"{"image":"aGk*"}"#,
            r#"{"id":"x"}"#,
            r#"{"image":"aGk="} {}"#,
        ];
        for body in declined {
            assert!(
                fast::parse(&Bytes::from_static(body.as_bytes())).is_none(),
                "{body}"
            );
        }
    }

    proptest::proptest! {
        /// Bodies stitched from JSON-ish fragments, valid and not: whenever the fast path
        /// accepts one, the general parser accepts it with the same image and id.
        #[test]
        fn the_fast_path_never_disagrees(
            parts in proptest::collection::vec(0..FRAGMENTS.len(), 0..12)
        ) {
            let body = Bytes::from(parts.iter().map(|&i| FRAGMENTS[i]).collect::<String>());
            if let Some(fast) = fast::parse(&body) {
                proptest::prop_assert_eq!(
                    outcome(Ok(fast)),
                    outcome(parse_general(&body)),
                    "{:?}",
                    body
                );
            }
        }
    }

    const FRAGMENTS: &[&str] = &[
        "{",
        "}",
        "[",
        ":",
        ",",
        " ",
        "\n",
        "\"image\"",
        "\"id\"",
        "\"message\"",
        "\"imageBase64\"",
        "\"aGk=\"",
        "\"aGk\"",
        "\"a-_b\"",
        "\"a+/b\"",
        r#""a\/b""#,
        "null",
        "nul",
        "7",
        "\"\"",
        "\"\u{e9}\"",
        "\"\u{1}\"",
        "\"data:image/png;base64,aGk=\"",
        "\"",
        "\"image\":\"aGk=\"",
        "{\"image\":\"aGk=\"",
        "\"id\":\"x\"",
    ];

    #[test]
    fn an_unescaped_image_is_a_slice_of_the_body() {
        let body = Bytes::from_static(br#"{"image":"aGVsbG8=","id":"a"}"#);
        let parsed = parse(&body).expect("valid");
        let offset = parsed.image.as_ptr() as usize - body.as_ptr() as usize;
        assert_eq!(&body[offset..offset + parsed.image.len()], b"aGVsbG8=");
    }
}

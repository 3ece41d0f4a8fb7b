//! The fast path: `{"image":"<plain base64>"}` with an optional `"id"` (a string without
//! escapes, or `null`), keys in any order, JSON white space anywhere between tokens.

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

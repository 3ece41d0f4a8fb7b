//! Base64 image payloads: standard or URL-safe alphabet, padded or not, optionally behind a
//! `data:image/<type>;base64,` prefix.
//!
//! The dispatcher calls [`validate`] on every `/enqueue` (one pass over the bytes, no allocation)
//! and inference calls [`decode`]; both apply the same rules, so anything the dispatcher accepts,
//! inference can decode.

use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};

/// Why a payload is not a base64 image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    /// Nothing after the optional prefix.
    Empty,
    /// A `data:` URL that is not `data:image/...;base64,`.
    BadDataUrl(String),
    /// Not base64: the byte offset (into the payload after any prefix) and why.
    InvalidBase64 { offset: usize, reason: &'static str },
}

impl std::error::Error for PayloadError {}

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PayloadError::Empty => f.write_str("image payload is empty"),
            PayloadError::BadDataUrl(why) => write!(f, "invalid data URL: {why}"),
            PayloadError::InvalidBase64 { offset, reason } => {
                write!(f, "invalid base64 at byte {offset}: {reason}")
            }
        }
    }
}

impl PayloadError {
    /// The stable error code clients see.
    pub fn code(&self) -> &'static str {
        match self {
            PayloadError::Empty => "empty_image",
            PayloadError::BadDataUrl(_) => "invalid_data_url",
            PayloadError::InvalidBase64 { .. } => "invalid_base64",
        }
    }
}

/// Which base64 alphabet a payload uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alphabet {
    Standard,
    UrlSafe,
}

/// Removes an optional `data:image/<type>;base64,` prefix.
pub fn strip_data_url(payload: &str) -> Result<&str, PayloadError> {
    let Some(rest) = payload.strip_prefix("data:") else {
        return Ok(payload);
    };
    let Some((meta, data)) = rest.split_once(',') else {
        return Err(PayloadError::BadDataUrl(
            "no ',' after the media type".into(),
        ));
    };
    let Some(media) = meta.strip_suffix(";base64") else {
        return Err(PayloadError::BadDataUrl(
            "only ';base64' data URLs are accepted".into(),
        ));
    };
    if !media.starts_with("image/") {
        return Err(PayloadError::BadDataUrl(format!(
            "media type must be image/*, got {media:?}"
        )));
    }
    Ok(data)
}

/// Checks a payload without decoding it: alphabet, padding and length. Returns the number of
/// bytes it decodes to and its alphabet. O(n), no allocation.
pub fn validate(payload: &str) -> Result<(usize, Alphabet), PayloadError> {
    let data = strip_data_url(payload)?.as_bytes();
    match quick_check(data) {
        Some(ok) => Ok(ok),
        None => scan(data),
    }
}

/// [`validate`] for a payload already known to have no `data:` prefix, as raw bytes, at memory
/// speed. `None` when the bytes are not plain valid base64 *or* need a closer look; a caller
/// then goes through [`validate`], which names the exact problem. `Some` implies the bytes are
/// ASCII and that [`validate`] returns the same value for them.
pub fn check_plain(data: &[u8]) -> Option<(usize, Alphabet)> {
    if data.starts_with(b"data:") {
        return None;
    }
    quick_check(data)
}

/// The common case of [`validate`] at memory speed: everything before the trailing `=` goes
/// through a SIMD alphabet check (standard first, then URL-safe), then the length rules apply.
/// `None` on any doubt: a byte outside the alphabet, mixed alphabets, odd padding or length, or
/// non-zero trailing bits (the SIMD check only passes canonical encodings, which every encoder
/// produces; [`scan`] accepts the others, as [`decode`] does). Whenever this returns `Some`,
/// [`scan`] returns the same value.
fn quick_check(data: &[u8]) -> Option<(usize, Alphabet)> {
    let padding = data.iter().rev().take_while(|&&b| b == b'=').count();
    if padding > 2 || (padding > 0 && !data.len().is_multiple_of(4)) {
        return None;
    }
    let symbols = &data[..data.len() - padding];
    let alphabet = if base64_simd::STANDARD_NO_PAD.check(symbols).is_ok() {
        Alphabet::Standard
    } else if base64_simd::URL_SAFE_NO_PAD.check(symbols).is_ok() {
        Alphabet::UrlSafe
    } else {
        return None;
    };
    let decoded = match symbols.len() % 4 {
        0 => symbols.len() / 4 * 3,
        2 => symbols.len() / 4 * 3 + 1,
        3 => symbols.len() / 4 * 3 + 2,
        _ => return None,
    };
    (decoded > 0).then_some((decoded, alphabet))
}

/// [`validate`] one byte at a time, with the offset and reason of the first problem.
fn scan(data: &[u8]) -> Result<(usize, Alphabet), PayloadError> {
    if data.is_empty() {
        return Err(PayloadError::Empty);
    }
    let mut alphabet: Option<Alphabet> = None;
    let mut symbols = 0usize;
    let mut padding = 0usize;
    for (offset, &b) in data.iter().enumerate() {
        let class = match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => None,
            b'+' | b'/' => Some(Alphabet::Standard),
            b'-' | b'_' => Some(Alphabet::UrlSafe),
            b'=' => {
                padding += 1;
                if padding > 2 {
                    return Err(PayloadError::InvalidBase64 {
                        offset,
                        reason: "more than two '=' padding characters",
                    });
                }
                continue;
            }
            _ => {
                return Err(PayloadError::InvalidBase64 {
                    offset,
                    reason: "character outside the base64 alphabets",
                });
            }
        };
        if padding > 0 {
            return Err(PayloadError::InvalidBase64 {
                offset,
                reason: "data after '=' padding",
            });
        }
        if let Some(class) = class {
            match alphabet {
                None => alphabet = Some(class),
                Some(seen) if seen != class => {
                    return Err(PayloadError::InvalidBase64 {
                        offset,
                        reason: "standard and URL-safe alphabets mixed",
                    });
                }
                Some(_) => {}
            }
        }
        symbols += 1;
    }
    if padding > 0 && !(symbols + padding).is_multiple_of(4) {
        return Err(PayloadError::InvalidBase64 {
            offset: data.len(),
            reason: "padding does not complete a 4-character group",
        });
    }
    let decoded = match symbols % 4 {
        0 => symbols / 4 * 3,
        2 => symbols / 4 * 3 + 1,
        3 => symbols / 4 * 3 + 2,
        _ => {
            return Err(PayloadError::InvalidBase64 {
                offset: data.len(),
                reason: "truncated: length is 1 more than a multiple of 4",
            });
        }
    };
    if decoded == 0 {
        return Err(PayloadError::Empty);
    }
    Ok((decoded, alphabet.unwrap_or(Alphabet::Standard)))
}

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

/// Decodes a payload after [`validate`]-ing it.
pub fn decode(payload: &str) -> Result<Vec<u8>, PayloadError> {
    let (_, alphabet) = validate(payload)?;
    let data = strip_data_url(payload)?;
    let engine = match alphabet {
        Alphabet::Standard => &STANDARD,
        Alphabet::UrlSafe => &URL_SAFE,
    };
    engine
        .decode(data)
        .map_err(|err| not_decodable(&err, data.len()))
}

/// [`decode`] into `out` (cleared first, its capacity reused): one pass, no allocation once
/// `out` is large enough. Plain canonical base64, what every encoder writes, is decoded with
/// SIMD (`base64-simd` picks AVX2 or SSE4.1 at run time); anything else (a `data:` prefix,
/// non-zero trailing bits, an error to report) takes [`decode`]'s path, with the same result.
pub fn decode_into(payload: &str, out: &mut Vec<u8>) -> Result<(), PayloadError> {
    out.clear();
    let data = payload.as_bytes();
    if let Some((_, alphabet)) = check_plain(data) {
        let padding = data.iter().rev().take_while(|&&b| b == b'=').count();
        let symbols = &data[..data.len() - padding];
        let engine = match alphabet {
            Alphabet::Standard => &base64_simd::STANDARD_NO_PAD,
            Alphabet::UrlSafe => &base64_simd::URL_SAFE_NO_PAD,
        };
        if engine.decode_append(symbols, out).is_ok() {
            return Ok(());
        }
        out.clear();
    }
    let (_, alphabet) = validate(payload)?;
    let data = strip_data_url(payload)?;
    let engine = match alphabet {
        Alphabet::Standard => &STANDARD,
        Alphabet::UrlSafe => &URL_SAFE,
    };
    engine
        .decode_vec(data, out)
        .map_err(|err| not_decodable(&err, data.len()))
}

fn not_decodable(err: &base64::DecodeError, len: usize) -> PayloadError {
    PayloadError::InvalidBase64 {
        offset: match *err {
            base64::DecodeError::InvalidByte(o, _)
            | base64::DecodeError::InvalidLastSymbol(o, _) => o,
            _ => len,
        },
        reason: "not decodable",
    }
}

/// Encodes bytes with the standard alphabet and padding (what the load tester sends).
pub fn encode(bytes: &[u8]) -> String {
    general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_both_alphabets_prefix_and_missing_padding() {
        let bytes = [0xfbu8, 0xff, 0xbf, 0x01];
        let std = general_purpose::STANDARD.encode(bytes);
        let url = general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(decode(&std).unwrap(), bytes);
        assert_eq!(decode(&url).unwrap(), bytes);
        assert_eq!(
            decode(&format!("data:image/png;base64,{std}")).unwrap(),
            bytes
        );
        assert_eq!(validate(&std).unwrap().0, 4);
    }

    #[test]
    fn rejects_with_codes() {
        let cases: &[(&str, &str)] = &[
            ("", "empty_image"),
            ("data:image/png;base64,", "empty_image"),
            ("data:text/plain;base64,aGk=", "invalid_data_url"),
            ("data:image/png,aGk=", "invalid_data_url"),
            ("aGk*", "invalid_base64"),
            ("a+b_", "invalid_base64"),
            ("aGk=a", "invalid_base64"),
            ("aGk===", "invalid_base64"),
            ("a", "invalid_base64"),
            ("aG=", "invalid_base64"),
            ("aGk\u{e9}", "invalid_base64"),
        ];
        for (input, code) in cases {
            let err = validate(input).expect_err(input);
            assert_eq!(err.code(), *code, "{input:?}: {err}");
            assert_eq!(decode(input).expect_err(input).code(), *code);
        }
    }

    /// `bytes` in either alphabet, padded or not, as a standard encoder writes them.
    fn encoded(bytes: &[u8], url: bool, pad: bool) -> String {
        match (url, pad) {
            (false, true) => general_purpose::STANDARD.encode(bytes),
            (false, false) => general_purpose::STANDARD_NO_PAD.encode(bytes),
            (true, true) => general_purpose::URL_SAFE.encode(bytes),
            (true, false) => general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        }
    }

    proptest! {
        #[test]
        fn decode_into_agrees_with_decode(s in "(data:image/png;base64,)?[A-Za-z0-9+/_=*-]{0,40}") {
            let mut out = vec![7u8; 3];
            let into = decode_into(&s, &mut out).map(|()| out);
            prop_assert_eq!(into, decode(&s));
        }

        #[test]
        fn decode_into_decodes_what_was_encoded(bytes in proptest::collection::vec(any::<u8>(), 1..300), url in any::<bool>(), pad in any::<bool>()) {
            let mut out = Vec::new();
            decode_into(&encoded(&bytes, url, pad), &mut out).unwrap();
            prop_assert_eq!(out, bytes);
        }

        #[test]
        fn validate_agrees_with_decode(bytes in proptest::collection::vec(any::<u8>(), 1..200), url in any::<bool>(), pad in any::<bool>()) {
            let text = encoded(&bytes, url, pad);
            prop_assert_eq!(validate(&text).unwrap().0, bytes.len());
            prop_assert_eq!(decode(&text).unwrap(), bytes);
        }

        /// What encoders produce never falls back to the byte-at-a-time scan.
        #[test]
        fn canonical_encodings_take_the_quick_path(bytes in proptest::collection::vec(any::<u8>(), 1..300), url in any::<bool>(), pad in any::<bool>()) {
            let text = encoded(&bytes, url, pad);
            let alphabet = if url && text.contains(['-', '_']) { Alphabet::UrlSafe } else { Alphabet::Standard };
            prop_assert_eq!(quick_check(text.as_bytes()), Some((bytes.len(), alphabet)));
        }

        #[test]
        fn quick_check_agrees_with_scan(s in "(data:image/png;base64,)?[A-Za-z0-9+/_=*-]{0,24}") {
            let data = strip_data_url(&s).map(str::as_bytes);
            if let Ok(data) = data {
                if let Some(quick) = quick_check(data) {
                    prop_assert_eq!(Ok(quick), scan(data));
                }
                prop_assert_eq!(validate(&s), scan(data));
            }
        }

        /// Long canonical payloads with one byte changed anywhere, so that the SIMD check sees
        /// the bad byte in every lane and block position: it never accepts what the byte-wise
        /// scan refuses, nor reports another length or alphabet.
        #[test]
        fn quick_check_agrees_with_scan_on_long_payloads(
            bytes in proptest::collection::vec(any::<u8>(), 1..400),
            url in any::<bool>(),
            at in any::<proptest::sample::Index>(),
            replacement in proptest::sample::select(b"*=+/-_A \n\"\x80".to_vec()),
        ) {
            let text = if url {
                general_purpose::URL_SAFE_NO_PAD.encode(&bytes)
            } else {
                general_purpose::STANDARD.encode(&bytes)
            };
            let mut data = text.into_bytes();
            let at = at.index(data.len());
            data[at] = replacement;
            if let Some(quick) = quick_check(&data) {
                prop_assert_eq!(Ok(quick), scan(&data));
            }
        }

        #[test]
        fn never_panics_on_arbitrary_text(s in ".{0,64}") {
            let ok = validate(&s).is_ok();
            prop_assert_eq!(ok, decode(&s).is_ok());
        }
    }
}

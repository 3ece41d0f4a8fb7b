//! Fuzzes the dispatcher's `/enqueue` body parsing and the base64 payload rules behind it.
//!
//! Properties, for any bytes:
//! - nothing panics;
//! - whenever the fast path (`dispatcher::enqueue::fast::parse`) accepts a body, the general
//!   serde parser accepts it too, with the same image bytes and id (the fast path may only
//!   decline, never decide differently);
//! - `dispatcher::enqueue::parse` accepts exactly the bodies that the wire type
//!   (`harness_core::wire::EnqueueRequest`) plus `image_payload::validate` accept, with the same
//!   image and id;
//! - `image_payload::validate` and `image_payload::decode` agree on every string: one succeeds
//!   iff the other does, and the decoded length is the length `validate` announced.

#![no_main]

use bytes::Bytes;
use dispatcher::enqueue::{self, Enqueue, fast};
use harness_core::image_payload;
use harness_core::wire::EnqueueRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    fast_path_agrees(&body);
    matches_the_wire_type(&body);
    if let Ok(text) = std::str::from_utf8(data) {
        validate_agrees_with_decode(text);
    }
});

fn fast_path_agrees(body: &Bytes) {
    let Some(quick) = fast::parse(body) else {
        return;
    };
    match enqueue::parse_general(body) {
        Ok(general) => assert_eq!(parts(&quick), parts(&general), "{body:?}"),
        Err(err) => panic!(
            "the fast path accepts {body:?}, the general parser refuses it: {}",
            err.code()
        ),
    }
}

fn matches_the_wire_type(body: &Bytes) {
    let ours = enqueue::parse(body).map(|parsed| parts(&parsed));
    let reference = serde_json::from_slice::<EnqueueRequest>(body)
        .ok()
        .and_then(|request| request.into_parts().ok())
        .filter(|(image, _)| image_payload::validate(image).is_ok());
    match (&ours, &reference) {
        (Ok((image, id)), Some((ref_image, ref_id))) => {
            assert_eq!(image.as_slice(), ref_image.as_bytes(), "{body:?}");
            assert_eq!(id, ref_id, "{body:?}");
        }
        (Err(_), None) => {}
        _ => panic!(
            "dispatcher {:?} and wire type {reference:?} disagree on {body:?}",
            ours.map_err(|e| e.code())
        ),
    }
    if let Ok((image, _)) = &ours {
        // The dispatcher queues the image unchanged; inference must be able to decode it.
        let text = std::str::from_utf8(image).expect("an accepted image is UTF-8");
        validate_agrees_with_decode(text);
        assert!(image_payload::decode(text).is_ok(), "{text:?}");
    }
}

fn validate_agrees_with_decode(text: &str) {
    match (image_payload::validate(text), image_payload::decode(text)) {
        (Ok((len, _)), Ok(bytes)) => assert_eq!(len, bytes.len(), "{text:?}"),
        (Err(v), Err(d)) => assert_eq!(v.code(), d.code(), "{text:?}: {v} / {d}"),
        (v, d) => panic!(
            "validate {:?} and decode {:?} disagree on {text:?}",
            v.map_err(|e| e.to_string()),
            d.map(|b| b.len()).map_err(|e| e.to_string())
        ),
    }
}

/// The parts of a parsed body that must not depend on which parser produced them.
fn parts(parsed: &Enqueue) -> (Vec<u8>, Option<String>) {
    (parsed.image.to_vec(), parsed.id.clone())
}

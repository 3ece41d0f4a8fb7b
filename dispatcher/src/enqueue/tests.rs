//! Both parsers against each other and against the wire type, on hand-written bodies.

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

// The typed contract: bodies written by serialising `harness_core::wire` values, so a change to
// the wire type (a field renamed, a shape added) shows up here rather than in production.

mod contract {
    use harness_core::image_payload::encode;
    use harness_core::wire::LegacyMessage;
    use proptest::collection::vec;
    use proptest::option;
    use proptest::prelude::*;

    use super::*;

    /// What `parse` must make of the JSON of `request`: the image and id the value holds once
    /// the payload rules pass, or the code of the refusal the wire type's rules give.
    fn expected(request: &EnqueueRequest) -> Result<(Vec<u8>, Option<String>), &'static str> {
        let (image, id) = request
            .clone()
            .into_parts()
            .map_err(|e| Error::from(e).code())?;
        image_payload::validate(&image).map_err(|e| e.code())?;
        Ok((image.into_bytes(), id))
    }

    /// `request` as serde writes it, compact and pretty-printed.
    fn serialised(request: &EnqueueRequest) -> [Bytes; 2] {
        [
            Bytes::from(serde_json::to_vec(request).expect("serialises")),
            Bytes::from(serde_json::to_vec_pretty(request).expect("serialises")),
        ]
    }

    /// Ids without anything JSON escapes: what the load tester sends.
    const PLAIN_ID: &str = "[a-zA-Z0-9_.:-]{0,40}";

    /// Ids as clients may choose them: plain, any printable text (quotes and backslashes
    /// included), or only characters JSON must escape.
    fn id() -> impl Strategy<Value = Option<String>> {
        option::of(prop_oneof![
            PLAIN_ID,
            "\\PC{0,20}",
            "[\"\\\\\u{1}-\u{1f}a]{1,8}",
        ])
    }

    /// Payloads: canonical base64 in either alphabet, a data URL, or short near-base64 strings
    /// that are valid or not.
    fn payload() -> impl Strategy<Value = String> {
        prop_oneof![
            vec(any::<u8>(), 1..300).prop_map(|b| encode(&b)),
            vec(any::<u8>(), 1..300).prop_map(|b| encode(&b).replace('+', "-").replace('/', "_")),
            vec(any::<u8>(), 1..60).prop_map(|b| format!("data:image/png;base64,{}", encode(&b))),
            "[A-Za-z0-9+/=_*-]{0,12}",
        ]
    }

    /// Any value of the wire type, in either shape, both or neither.
    fn request() -> impl Strategy<Value = EnqueueRequest> {
        (option::of(payload()), id(), option::of(payload())).prop_map(|(image, id, legacy)| {
            EnqueueRequest {
                image,
                id,
                message: legacy.map(|image_base64| LegacyMessage { image_base64 }),
            }
        })
    }

    proptest! {
        /// `parse` reads back exactly what the wire type wrote, or refuses it with the code
        /// the wire type's rules give; the fast path, whenever it accepts, reads the same.
        #[test]
        fn parse_reads_what_the_wire_type_wrote(request in request()) {
            let want = expected(&request);
            for body in serialised(&request) {
                prop_assert_eq!(&outcome(parse(&body)), &want, "{:?}", body);
                if let Some(fast) = fast::parse(&body) {
                    prop_assert_eq!(&outcome(Ok(fast)), &want, "{:?}", body);
                }
            }
        }

        /// What clients send (`EnqueueRequest::new` with a canonical payload and an id that
        /// needs no escape) takes the fast path and reads the same fields.
        #[test]
        fn what_clients_send_takes_the_fast_path(
            bytes in vec(any::<u8>(), 1..2000),
            id in option::of(PLAIN_ID),
        ) {
            let request = EnqueueRequest::new(encode(&bytes), id);
            for body in serialised(&request) {
                let fast = fast::parse(&body).map(|parsed| outcome(Ok(parsed)));
                prop_assert_eq!(fast, Some(expected(&request)), "{:?}", body);
            }
        }
    }

    #[test]
    fn both_shapes_of_the_wire_type_read_the_same_fields() {
        let image = encode(b"an image");
        let table = [
            EnqueueRequest::new(image.clone(), None),
            EnqueueRequest::new(image.clone(), Some("req-1".into())),
            EnqueueRequest::new(image.clone(), Some("quote \" and \\ and \u{1}".into())),
            EnqueueRequest {
                image: None,
                id: Some("legacy".into()),
                message: Some(LegacyMessage {
                    image_base64: image.clone(),
                }),
            },
        ];
        for request in table {
            for body in serialised(&request) {
                assert_eq!(
                    outcome(parse(&body)),
                    Ok((image.clone().into_bytes(), request.id.clone())),
                    "{body:?}"
                );
            }
        }
    }
}

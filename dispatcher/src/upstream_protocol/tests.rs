//! Request bodies and answer classification of both protocols.

use harness_core::oip::{Datatype, TensorData};
use serde_json::json;

use super::*;

fn body(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).expect("json")
}

fn v2(bytes: V2Bytes, classification_output: Option<&str>) -> UpstreamProtocol {
    UpstreamProtocol::V2(V2Upstream {
        model: "efficientnet".into(),
        bytes,
        input: "image".into(),
        classification_output: classification_output.map(str::to_owned),
    })
}

#[test]
fn the_harness_body_is_an_infer_request() {
    let request = UpstreamProtocol::Harness
        .request(b"data:image/png;base64,aGk=")
        .expect("utf-8");
    assert_eq!(
        &request.body[..],
        br#"{"image":"data:image/png;base64,aGk="}"#
    );
    assert_eq!(request.content_type, "application/json");
    assert_eq!(request.header_length, None);
    let parsed: harness_core::wire::InferRequest =
        serde_json::from_slice(&request.body).expect("inference's request type");
    assert_eq!(parsed.image, "data:image/png;base64,aGk=");
    assert_eq!(UpstreamProtocol::Harness.paths(), EndpointPaths::default());
}

#[test]
fn v2_paths_name_the_model() {
    let paths = v2(V2Bytes::Binary, None).paths();
    assert_eq!(paths.infer, "/v2/models/efficientnet/infer");
    assert_eq!(paths.ready, "/v2/models/efficientnet/ready");
}

#[test]
fn v2_binary_sends_the_decoded_image_after_the_json() {
    let request = v2(V2Bytes::Binary, Some("logits"))
        .request(b"data:image/png;base64,aGk=")
        .expect("valid");
    assert_eq!(request.content_type, "application/octet-stream");
    let header_length = request.header_length.expect("binary");
    let (json_part, raw) = request.body.split_at(header_length);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(json_part).expect("json"),
        json!({
            "inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                        "parameters": {"binary_data_size": 6}}],
            "outputs": [{"name": "logits", "parameters": {"classification": 1}}]
        })
    );
    assert_eq!(raw, b"\x02\x00\x00\x00hi");
    let back = InferenceRequest::decode(&request.body, Some(header_length)).expect("decodes");
    assert_eq!(
        back.inputs[0].data,
        Some(TensorData::Bytes(vec![b"hi".to_vec()]))
    );
}

#[test]
fn v2_base64_sends_the_text_with_its_content_type() {
    for queued in [&b"aGk/"[..], b"data:image/png;base64,aGk/", b"aGk_"] {
        let request = v2(V2Bytes::Base64, None).request(queued).expect("valid");
        assert_eq!(request.header_length, None);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&request.body).expect("json"),
            json!({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                               "parameters": {"content_type": "base64"}, "data": ["aGk/"]}]})
        );
    }
    assert!(matches!(
        v2(V2Bytes::Binary, None).request(b"!!!"),
        Err(RequestError::Payload(_))
    ));
}

#[test]
fn classifies_harness_responses() {
    let p = UpstreamProtocol::Harness;
    let ok = body(json!({
        "predictions": [{"label": "espresso", "classId": 967, "score": 0.9}],
        "model": "m",
        "timingMs": {"decode": 1.0, "preprocess": 1.0, "inference": 1.0, "total": 3.0}
    }));
    assert_eq!(
        p.classify(StatusCode::OK, None, &ok),
        Attempt::Ok {
            label: Some("espresso".into())
        }
    );
    assert_eq!(
        p.classify(StatusCode::OK, None, b"nope"),
        Attempt::Final {
            code: "upstream_bad_response".into()
        }
    );
    let bad = body(json!({"error": {"code": "invalid_image", "message": "not an image"}}));
    assert_eq!(
        p.classify(StatusCode::BAD_REQUEST, None, &bad),
        Attempt::Final {
            code: "invalid_image".into()
        }
    );
    let odd = body(json!({"error": {"code": "Weird Code!", "message": ""}}));
    assert_eq!(
        p.classify(StatusCode::UNPROCESSABLE_ENTITY, None, &odd),
        Attempt::Final {
            code: "upstream_rejected".into()
        }
    );
    assert!(matches!(
        p.classify(StatusCode::SERVICE_UNAVAILABLE, None, b""),
        Attempt::Retry { .. }
    ));
    assert!(matches!(
        p.classify(StatusCode::INTERNAL_SERVER_ERROR, None, b""),
        Attempt::Retry {
            code: Outcome::UpstreamServerError
        }
    ));
}

#[test]
fn classifies_v2_responses() {
    let p = v2(V2Bytes::Base64, Some("logits"));
    let classified = body(json!({"model_name": "efficientnet", "outputs": [
        {"name": "logits", "shape": [1, 1], "datatype": "BYTES", "data": ["0.96:967:espresso"]}
    ]}));
    assert_eq!(
        p.classify(StatusCode::OK, None, &classified),
        Attempt::Ok {
            label: Some("espresso".into())
        }
    );
    // Logits only: the top-1 index is the label.
    let logits = body(json!({"model_name": "m", "outputs": [
        {"name": "logits", "shape": [1, 3], "datatype": "FP32", "data": [0.1, 2.5, 0.3]}
    ]}));
    assert_eq!(
        p.classify(StatusCode::OK, None, &logits),
        Attempt::Ok {
            label: Some("1".into())
        }
    );
    // A binary answer is read with its header length.
    let mut response = InferenceResponse::decode(&logits, None).expect("valid");
    assert_eq!(response.outputs[0].datatype, Datatype::Fp32);
    response.id = Some("x".into());
    let binary = response.encode_binary(|_| true).expect("encodes");
    assert_eq!(
        p.classify(StatusCode::OK, Some(binary.header_length), &binary.body),
        Attempt::Ok {
            label: Some("1".into())
        }
    );
    assert_eq!(
        p.classify(StatusCode::OK, Some(binary.body.len() + 9), &binary.body),
        Attempt::Final {
            code: Outcome::UpstreamBadResponse
        }
    );
    let prose = body(json!({"error": "Model efficientnet not found"}));
    assert_eq!(
        p.classify(StatusCode::NOT_FOUND, None, &prose),
        Attempt::Final {
            code: "v2_404".into()
        }
    );
    let code = body(json!({"error": "invalid_image"}));
    assert_eq!(
        p.classify(StatusCode::BAD_REQUEST, None, &code),
        Attempt::Final {
            code: "invalid_image".into()
        }
    );
    assert_eq!(
        p.classify(StatusCode::TOO_MANY_REQUESTS, None, &prose),
        Attempt::Retry {
            code: Outcome::UpstreamUnavailable
        }
    );
    assert_eq!(
        p.classify(StatusCode::BAD_GATEWAY, None, b""),
        Attempt::Retry {
            code: Outcome::UpstreamServerError
        }
    );
}

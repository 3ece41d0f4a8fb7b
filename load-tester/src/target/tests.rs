//! Direct requests and how answers read.

use harness_core::oip::InferenceRequest;
use serde_json::json;

use super::*;

fn v2(bytes: V2Bytes) -> DirectTarget {
    DirectTarget::V2 {
        url: Url::parse("http://m:8080/base").unwrap(),
        model: V2Model {
            model: "efficientnet".into(),
            bytes,
            input: "image".into(),
            classification_output: None,
        },
    }
}

#[test]
fn urls_and_info() {
    let t = v2(V2Bytes::Base64);
    assert_eq!(
        t.infer_url().as_str(),
        "http://m:8080/base/v2/models/efficientnet/infer"
    );
    assert_eq!(
        t.ready_url().as_str(),
        "http://m:8080/base/v2/models/efficientnet/ready"
    );
    assert_eq!(
        serde_json::to_value(t.info()).unwrap(),
        json!({"kind": "v2", "url": "http://m:8080/base", "modelName": "efficientnet"})
    );
    let infer = DirectTarget::Infer {
        url: Url::parse("http://i:8000").unwrap(),
    };
    assert_eq!(infer.infer_url().as_str(), "http://i:8000/infer");
    assert_eq!(
        serde_json::to_value(infer.info()).unwrap(),
        json!({"kind": "infer", "url": "http://i:8000/"})
    );
}

#[test]
fn requests_carry_the_image() {
    let b = v2(V2Bytes::Binary).request("aGk=").unwrap();
    let decoded = InferenceRequest::decode(&b.body, b.header_length).unwrap();
    assert_eq!(
        decoded.inputs[0].bytes_elements().unwrap().unwrap(),
        vec![b"hi".to_vec()]
    );
    let j = v2(V2Bytes::Base64).request("aGk=").unwrap();
    assert_eq!(j.header_length, None);
    let decoded = InferenceRequest::decode(&j.body, None).unwrap();
    assert_eq!(
        decoded.inputs[0].bytes_elements().unwrap().unwrap(),
        vec![b"hi".to_vec()]
    );
    let infer = DirectTarget::Infer {
        url: Url::parse("http://i:8000").unwrap(),
    };
    assert_eq!(
        &infer.request("aGk=").unwrap().body[..],
        br#"{"image":"aGk="}"#
    );
}

#[test]
fn answers_decide_the_outcome() {
    let t = v2(V2Bytes::Base64);
    let ok = json!({"model_name": "m", "outputs": [
        {"name": "label", "shape": [1], "datatype": "BYTES", "data": ["espresso"]}
    ]})
    .to_string();
    assert_eq!(
        t.read(StatusCode::OK, None, ok.as_bytes()),
        DirectAnswer::Ok {
            label: Some("espresso".into())
        }
    );
    assert_eq!(
        t.read(StatusCode::OK, None, b"{}"),
        DirectAnswer::Failed {
            code: "bad_response".into()
        }
    );
    let prose = json!({"error": "Model efficientnet not found"}).to_string();
    assert_eq!(
        t.read(StatusCode::NOT_FOUND, None, prose.as_bytes()),
        DirectAnswer::Failed {
            code: "v2_404".into()
        }
    );
    assert_eq!(
        t.read(StatusCode::SERVICE_UNAVAILABLE, None, b""),
        DirectAnswer::Rejected {
            code: "v2_503".into()
        }
    );
    let infer = DirectTarget::Infer {
        url: Url::parse("http://i:8000").unwrap(),
    };
    let bad = json!({"error": {"code": "invalid_image", "message": "no"}}).to_string();
    assert_eq!(
        infer.read(StatusCode::BAD_REQUEST, None, bad.as_bytes()),
        DirectAnswer::Failed {
            code: "invalid_image".into()
        }
    );
    assert_eq!(
        infer.read(StatusCode::TOO_MANY_REQUESTS, None, b"x"),
        DirectAnswer::Rejected {
            code: "http_429".into()
        }
    );
}

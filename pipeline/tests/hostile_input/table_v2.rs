//! The hostile-input rows of inference's Open Inference Protocol routes (inference README
//! "Open Inference Protocol"): every refusal is `{"error":"message"}` with the status rules of
//! `/infer` (400 for a body the v2 codec or the model refuses, 404 for an unknown model, 413, 422
//! for bytes that are not a decodable image or a bomb), and valid images give the photo's label.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use harness_core::image_payload::encode;
use harness_core::oip::{HEADER_CONTENT_LENGTH, InferenceRequest, RequestedOutput, Tensor};
use serde_json::{Value, json};

use crate::check::{Expect, Row};
use crate::corpus::{self, photo};
use crate::services::Service;
use crate::table::{huge_declared, post, request, with_header};

/// The v2 inference path of the served model.
pub const V2_INFER: &str = "/v2/models/efficientnet-lite0/infer";

fn v2_refused(status: u16) -> Expect {
    Expect::V2Refused(StatusCode::from_u16(status).unwrap())
}

fn json_body(body: &Value) -> Request<Body> {
    post(V2_INFER, "application/json", body.to_string())
}

/// `{"inputs":[{"name":"image", ...}]}` with the given datatype, shape and data.
fn image_input(datatype: &str, shape: Value, data: Value) -> Request<Body> {
    json_body(
        &json!({"inputs": [{"name": "image", "datatype": datatype, "shape": shape, "data": data}]}),
    )
}

/// One image as a base64 BYTES element.
pub fn v2_base64(file: &[u8]) -> Request<Body> {
    let request = InferenceRequest::new(vec![Tensor::bytes_base64("image", vec![encode(file)])]);
    json_body(&serde_json::to_value(request).unwrap())
}

/// One image through the binary extension.
pub fn v2_binary(file: &[u8]) -> Request<Body> {
    let message = InferenceRequest::new(vec![Tensor::bytes("image", vec![file.to_vec()])])
        .encode_binary()
        .unwrap();
    binary(message.body, message.header_length.to_string().as_bytes())
}

/// A binary-extension body with the given `Inference-Header-Content-Length`.
fn binary(body: Vec<u8>, header_length: &[u8]) -> Request<Body> {
    let request = post(V2_INFER, "application/octet-stream", body);
    with_header(
        request,
        header::HeaderName::from_static(HEADER_CONTENT_LENGTH),
        header_length,
    )
}

/// A JSON header declaring `declared` bytes of BYTES for `image`, then `raw`.
fn lying_binary(declared: u64, raw: &[u8]) -> Request<Body> {
    let header = json!({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                    "parameters": {"binary_data_size": declared}}]})
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(raw);
    binary(body, header.len().to_string().as_bytes())
}

fn classification(k: i64) -> Request<Body> {
    let mut request = InferenceRequest::new(vec![Tensor::bytes_base64(
        "image",
        vec![encode(&photo("coffee.png"))],
    )]);
    let mut output = RequestedOutput::classification("logits", 1);
    output
        .parameters
        .as_mut()
        .unwrap()
        .insert("classification".into(), k.into());
    request.outputs = Some(vec![output]);
    json_body(&serde_json::to_value(request).unwrap())
}

#[rustfmt::skip] // one row a line: a table
pub fn inference_v2_rows(label: &str) -> Vec<Row> {
    use Service::Inference as S;
    let same = || Expect::V2Label(label.to_owned());
    let random = corpus::random_bytes(4096);
    let mut element = 1_000_000u32.to_le_bytes().to_vec();
    element.extend_from_slice(b"short");
    vec![
        Row::new(S, "v2: coffee as base64 BYTES", v2_base64(&photo("coffee.png")), same()),
        Row::new(S, "v2: coffee through the binary extension", v2_binary(&photo("coffee.png")), same()),
        Row::new(S, "v2: CMYK JPEG, binary", v2_binary(&photo("coffee-cmyk.jpg")), same()),
        Row::new(S, "v2: grayscale PNG, base64", v2_base64(&corpus::coffee_gray()), same()),
        Row::new(S, "v2: empty body", post(V2_INFER, "application/json", ""), v2_refused(400)),
        Row::new(S, "v2: bad JSON", post(V2_INFER, "application/json", "{\"inputs\": ["), v2_refused(400)),
        Row::new(S, "v2: random bytes", post(V2_INFER, "application/json", random.clone()), v2_refused(400)),
        Row::new(S, "v2: inputs is a number", json_body(&json!({"inputs": 3})), v2_refused(400)),
        Row::new(S, "v2: no inputs", json_body(&json!({"inputs": []})), v2_refused(400)),
        Row::new(S, "v2: unknown datatype", image_input("STRING", json!([1]), json!(["a"])), v2_refused(400)),
        Row::new(S, "v2: image as FP32", image_input("FP32", json!([1]), json!([1.0])), v2_refused(400)),
        Row::new(S, "v2: image of shape [1, 1]", image_input("BYTES", json!([1, 1]), json!(["a"])), v2_refused(400)),
        Row::new(S, "v2: shape [2] with one element", image_input("BYTES", json!([2]), json!(["a"])), v2_refused(400)),
        Row::new(S, "v2: negative shape", image_input("BYTES", json!([-1]), json!(["a"])), v2_refused(400)),
        Row::new(S, "v2: shape overflowing u64", image_input("BYTES", json!([i64::MAX, i64::MAX]), json!(["a"])), v2_refused(400)),
        Row::new(S, "v2: batch of 17", image_input("BYTES", json!([17]), json!(vec![encode(b"x"); 17])), v2_refused(400)),
        Row::new(S, "v2: a number in BYTES", image_input("BYTES", json!([1]), json!([5])), v2_refused(400)),
        Row::new(S, "v2: random bytes as an image", v2_binary(&random), v2_refused(422)),
        Row::new(S, "v2: truncated JPEG, base64", v2_base64(&corpus::truncated_jpeg()), v2_refused(422)),
        Row::new(S, "v2: invalid base64", json_body(&json!({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"content_type": "base64"}, "data": ["aGk*"]}]})), v2_refused(400)),
        Row::new(S, "v2: preprocessed input of the wrong shape", json_body(&json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 2, 2], "data": vec![0.0; 12]}]})), v2_refused(400)),
        Row::new(S, "v2: preprocessed input as INT64", json_body(&json!({"inputs": [{"name": "input", "datatype": "INT64", "shape": [1, 3, 1, 1], "data": [0, 0, 0]}]})), v2_refused(400)),
        Row::new(S, "v2: unknown input", json_body(&json!({"inputs": [{"name": "pixels", "datatype": "BYTES", "shape": [1], "data": ["a"]}]})), v2_refused(400)),
        Row::new(S, "v2: classification 0", classification(0), v2_refused(400)),
        Row::new(S, "v2: classification 1001", classification(1001), v2_refused(400)),
        Row::new(S, "v2: classification -1", classification(-1), v2_refused(400)),
        Row::new(S, "v2: binary_data_size larger than the body", lying_binary(100, b"0123456789"), v2_refused(400)),
        Row::new(S, "v2: binary_data_size u64::MAX", lying_binary(u64::MAX, b"0123456789"), v2_refused(400)),
        Row::new(S, "v2: binary_data_size smaller than the body", lying_binary(4, b"0123456789"), v2_refused(400)),
        Row::new(S, "v2: a BYTES length past its data", lying_binary(element.len() as u64, &element), v2_refused(400)),
        Row::new(S, "v2: header length past the body", binary(b"{\"inputs\":[]}".to_vec(), b"1000000"), v2_refused(400)),
        Row::new(S, "v2: header length not a number", binary(b"{\"inputs\":[]}".to_vec(), b"twelve"), v2_refused(400)),
        Row::new(S, "v2: 100 000 nested arrays in data", post(V2_INFER, "application/json", corpus::nested_json(r#"{"inputs":[{"name":"image","datatype":"BYTES","shape":[1],"data":"#, 100_000)), v2_refused(400)),
        Row::new(S, "v2: unknown model", post("/v2/models/resnet/infer", "application/json", "{}"), v2_refused(404)),
        Row::new(S, "v2: unknown version", post("/v2/models/efficientnet-lite0/versions/7/infer", "application/json", "{}"), v2_refused(404)),
        Row::new(S, "v2: 50 MB body, declared", huge_declared(V2_INFER, "application/json"), v2_refused(413)),
        Row::new(S, "v2: GET on infer", request(Method::GET, V2_INFER, None, Body::empty()), v2_refused(405)),
        Row::new(S, "v2: unknown path", request(Method::GET, "/v2/repository/index", None, Body::empty()), v2_refused(404)),
    ]
}

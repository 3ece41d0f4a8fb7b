//! Round trips of the v2 codecs, the label rule, and hostile bodies.

use proptest::prelude::*;
use serde_json::json;

use super::*;

fn fp32(name: &str, values: Vec<f64>) -> Tensor {
    Tensor {
        name: name.into(),
        shape: vec![1, values.len() as i64],
        datatype: Datatype::Fp32,
        parameters: None,
        data: Some(TensorData::Float(values)),
    }
}

fn response(outputs: Vec<Tensor>) -> InferenceResponse {
    InferenceResponse {
        model_name: "m".into(),
        model_version: None,
        id: None,
        parameters: None,
        outputs,
    }
}

#[test]
fn json_request_has_the_wire_shape() {
    let mut request =
        InferenceRequest::new(vec![Tensor::bytes_base64("image", vec!["aGk=".into()])]);
    request.outputs = Some(vec![RequestedOutput::classification("logits", 1)]);
    let value = serde_json::to_value(&request).unwrap();
    assert_eq!(
        value,
        json!({
            "inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                        "parameters": {"content_type": "base64"}, "data": ["aGk="]}],
            "outputs": [{"name": "logits", "parameters": {"classification": 1}}]
        })
    );
    let back = InferenceRequest::decode(&serde_json::to_vec(&value).unwrap(), None).unwrap();
    assert_eq!(back, request);
    assert_eq!(
        back.inputs[0].bytes_elements().unwrap().unwrap(),
        vec![b"hi".to_vec()]
    );
}

#[test]
fn nested_json_data_is_flattened_row_major_and_checked() {
    let body = json!({"model_name": "m", "outputs": [
        {"name": "x", "shape": [2, 2], "datatype": "INT8", "data": [[1, -2], [3, 4]]}
    ]});
    let r = InferenceResponse::decode(body.to_string().as_bytes(), None).unwrap();
    assert_eq!(r.outputs[0].data, Some(TensorData::Int(vec![1, -2, 3, 4])));
    for bad in [
        json!({"name": "x", "shape": [3], "datatype": "INT8", "data": [1, 2]}),
        json!({"name": "x", "shape": [1], "datatype": "INT8", "data": [200]}),
        json!({"name": "x", "shape": [1], "datatype": "UINT8", "data": [-1]}),
        json!({"name": "x", "shape": [1], "datatype": "FP32", "data": ["a"]}),
        json!({"name": "x", "shape": [-1], "datatype": "FP32", "data": []}),
        json!({"name": "x", "shape": [1], "datatype": "FP99", "data": [1]}),
    ] {
        let body = json!({"model_name": "m", "outputs": [bad]}).to_string();
        assert!(
            InferenceResponse::decode(body.as_bytes(), None).is_err(),
            "{body}"
        );
    }
}

#[test]
fn binary_request_layout() {
    let request = InferenceRequest::new(vec![Tensor::bytes("image", vec![b"abc".to_vec()])]);
    let message = request.encode_binary().unwrap();
    let (json, raw) = message.body.split_at(message.header_length);
    let header: serde_json::Value = serde_json::from_slice(json).unwrap();
    assert_eq!(
        header,
        json!({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                           "parameters": {"binary_data_size": 7}}]})
    );
    assert_eq!(raw, b"\x03\x00\x00\x00abc");
    let back = InferenceRequest::decode(&message.body, Some(message.header_length)).unwrap();
    assert_eq!(
        back.inputs[0].data,
        Some(TensorData::Bytes(vec![b"abc".to_vec()]))
    );
}

#[test]
fn fixed_size_types_decode_from_raw() {
    let mut t = Tensor {
        name: "h".into(),
        shape: vec![3],
        datatype: Datatype::Fp16,
        parameters: None,
        data: None,
    };
    // 1.0, -2.0, 0.5 in half precision.
    t.set_raw(&[0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38]).unwrap();
    assert_eq!(t.data, Some(TensorData::Float(vec![1.0, -2.0, 0.5])));
    t.datatype = Datatype::Int16;
    t.set_raw(&[0xff, 0xff, 0x02, 0x00, 0x00, 0x80]).unwrap();
    assert_eq!(t.data, Some(TensorData::Int(vec![-1, 2, -32768])));
    assert!(
        t.set_raw(&[0; 5]).is_err(),
        "not a whole number of elements"
    );
    assert!(
        t.set_raw(&[0; 8]).is_err(),
        "four elements for a shape of three"
    );
}

#[test]
fn hostile_binary_bodies_are_typed_errors() {
    let request = InferenceRequest::new(vec![Tensor::bytes("image", vec![b"abc".to_vec()])]);
    let m = request.encode_binary().unwrap();
    let decode = |body: &[u8], header: Option<usize>| InferenceRequest::decode(body, header);
    assert!(matches!(
        decode(&m.body, Some(m.body.len() + 1)),
        Err(CodecError::HeaderLength { .. })
    ));
    assert!(matches!(
        decode(&m.body[..m.body.len() - 1], Some(m.header_length)),
        Err(CodecError::BinarySize {
            declared: 7,
            actual: 6
        })
    ));
    assert!(matches!(decode(&m.body, None), Err(CodecError::Json(_))));
    // A length prefix that claims 4 GiB: refused, not allocated.
    let mut lying = m.body.clone();
    lying[m.header_length..m.header_length + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode(&lying, Some(m.header_length)),
        Err(CodecError::BytesElement { index: 0, .. })
    ));
    // A size declared without any bytes behind it, and a size that is not a number.
    for params in [
        json!({"binary_data_size": 1u64 << 40}),
        json!({"binary_data_size": "7"}),
    ] {
        let body = json!({"inputs": [{"name": "i", "shape": [1], "datatype": "UINT8",
                                      "parameters": params}]})
        .to_string();
        assert!(decode(body.as_bytes(), None).is_err());
    }
    // Sizes whose sum overflows.
    let body = json!({"inputs": [
        {"name": "a", "shape": [1], "datatype": "UINT8", "parameters": {"binary_data_size": u64::MAX}},
        {"name": "b", "shape": [1], "datatype": "UINT8", "parameters": {"binary_data_size": 2}}
    ]})
    .to_string();
    assert!(matches!(
        decode(body.as_bytes(), None),
        Err(CodecError::BinarySize { .. })
    ));
}

#[test]
fn classification_strings() {
    assert_eq!(
        Classification::parse("0.96:967:espresso"),
        Some(Classification {
            score: 0.96,
            index: 967,
            label: Some("espresso".into())
        })
    );
    assert_eq!(
        Classification::parse("0.5:3").map(Classification::into_label),
        Some("3".into())
    );
    assert_eq!(
        Classification::parse("1:2:a:b").and_then(|c| c.label),
        Some("a:b".into())
    );
    assert_eq!(Classification::parse("espresso"), None);
    assert_eq!(Classification::parse("x:1:a"), None);
}

#[test]
fn the_label_rule() {
    let logits = fp32("logits", vec![0.1, 3.0, f64::NAN, 2.0]);
    let words = Tensor::bytes("label", vec![b"espresso".to_vec()]);
    let classes = Tensor::bytes("logits", vec![b"0.9:1:cup".to_vec()]);
    assert_eq!(
        top_label(&response(vec![logits.clone()]), None),
        Some("1".into())
    );
    assert_eq!(
        top_label(&response(vec![logits.clone(), words.clone()]), None),
        Some("espresso".into())
    );
    assert_eq!(
        top_label(&response(vec![classes, words]), Some("logits")),
        Some("cup".into())
    );
    assert_eq!(top_label(&response(vec![]), None), None);
    let b64 = Tensor::bytes_base64("label", vec!["ZXNwcmVzc28=".into()]);
    assert_eq!(
        top_label(&response(vec![b64]), None),
        Some("espresso".into())
    );
}

fn tensor_strategy() -> impl Strategy<Value = Tensor> {
    let data = prop_oneof![
        prop::collection::vec(any::<bool>(), 0..8)
            .prop_map(|v| (Datatype::Bool, TensorData::Bool(v))),
        prop::collection::vec(any::<u16>(), 0..8).prop_map(|v| (
            Datatype::Uint16,
            TensorData::Uint(v.into_iter().map(u64::from).collect())
        )),
        prop::collection::vec(any::<i32>(), 0..8).prop_map(|v| (
            Datatype::Int32,
            TensorData::Int(v.into_iter().map(i64::from).collect())
        )),
        prop::collection::vec(any::<i64>(), 0..8)
            .prop_map(|v| (Datatype::Int64, TensorData::Int(v))),
        prop::collection::vec(-1e6f32..1e6, 0..8).prop_map(|v| (
            Datatype::Fp32,
            TensorData::Float(v.into_iter().map(f64::from).collect())
        )),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 0..5)
            .prop_map(|v| (Datatype::Bytes, TensorData::Bytes(v))),
    ];
    ("[a-z]{1,6}", data).prop_map(|(name, (datatype, data))| Tensor {
        name,
        shape: vec![data.len() as i64],
        datatype,
        parameters: None,
        data: Some(data),
    })
}

proptest! {
    #[test]
    fn binary_round_trip(inputs in prop::collection::vec(tensor_strategy(), 0..4)) {
        let request = InferenceRequest::new(inputs.clone());
        let m = request.encode_binary().unwrap();
        let back = InferenceRequest::decode(&m.body, Some(m.header_length)).unwrap();
        prop_assert_eq!(back.inputs.len(), inputs.len());
        for (got, want) in back.inputs.iter().zip(&inputs) {
            prop_assert_eq!(&got.data, &want.data);
            prop_assert_eq!(&got.shape, &want.shape);
        }
    }

    #[test]
    fn json_round_trip_of_outputs(outputs in prop::collection::vec(tensor_strategy(), 0..4)) {
        // JSON carries BYTES as strings: keep them UTF-8 here.
        let outputs: Vec<Tensor> = outputs.into_iter().filter(|t| match &t.data {
            Some(TensorData::Bytes(v)) => v.iter().all(|e| std::str::from_utf8(e).is_ok()),
            _ => true,
        }).collect();
        let r = response(outputs);
        let body = serde_json::to_vec(&r).unwrap();
        prop_assert_eq!(InferenceResponse::decode(&body, None).unwrap(), r);
    }

    #[test]
    fn bytes_elements_round_trip(elements in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..6)) {
        let raw = raw::encode_bytes_elements(&elements).unwrap();
        prop_assert_eq!(raw::decode_bytes_elements(&raw, "t").unwrap(), elements);
    }

    #[test]
    fn hostile_bodies_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..200),
        header in prop::option::of(0usize..300),
    ) {
        let _ = InferenceRequest::decode(&body, header);
        let _ = InferenceResponse::decode(&body, header);
        let _ = raw::decode_bytes_elements(&body, "t");
    }

    #[test]
    fn a_mangled_binary_request_is_refused_or_consistent(
        inputs in prop::collection::vec(tensor_strategy(), 1..3),
        cut in any::<prop::sample::Index>(),
        header_shift in -3i64..3,
    ) {
        let m = InferenceRequest::new(inputs).encode_binary().unwrap();
        let cut = cut.index(m.body.len() + 1);
        let header = (m.header_length as i64 + header_shift).max(0) as usize;
        if let Ok(r) = InferenceRequest::decode(&m.body[..cut], Some(header)) {
            // Whatever decodes has data matching every shape.
            for t in &r.inputs {
                let n = t.data.as_ref().map_or(0, TensorData::len) as u64;
                prop_assert_eq!(n, t.element_count().unwrap());
            }
        }
    }
}

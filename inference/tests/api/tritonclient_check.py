"""Triton's official Python HTTP client against a running inference service.

Usage: tritonclient_check.py HOST:PORT MODEL IMAGES_DIR PREPROCESSED_F32

PREPROCESSED_F32 is coffee.png after the service's own preprocessing, raw little-endian float32
of shape [1, 3, 224, 224] (written by the Rust test). Prints one line per check,
`PASS name: detail` or `FAIL name: detail`, then `DONE passed=N failed=M`; exits 1 on a failure.
"""

import base64
import json
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

url, model, images, preprocessed = sys.argv[1:5]
client = httpclient.InferenceServerClient(url=url)
results = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    results["passed" if ok else "failed"] += 1
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)


def attempt(name, body):
    try:
        body()
    except Exception as err:  # a failed check, never a crash of the script
        check(name, False, f"{type(err).__name__}: {err}")


def photo(name):
    with open(f"{images}/{name}", "rb") as f:
        return f.read()


def labels(result, output="logits"):
    """The label of each `score:index:label` row, top-1 first."""
    rows = result.as_numpy(output)
    return [[e.decode().split(":", 2)[2] for e in row] for row in rows]


def health():
    check("server_live", client.is_server_live())
    check("server_ready", client.is_server_ready())
    check("model_ready", client.is_model_ready(model))
    check("model_ready_version_1", client.is_model_ready(model, "1"))


def metadata():
    server = client.get_server_metadata()
    check(
        "server_metadata",
        {"binary_tensor_data", "classification"} <= set(server["extensions"]),
        json.dumps(server),
    )
    meta = client.get_model_metadata(model)
    inputs = {i["name"]: i for i in meta["inputs"]}
    outputs = {o["name"]: o for o in meta["outputs"]}
    check(
        "model_metadata",
        meta["platform"] == "onnx"
        and inputs["image"]["datatype"] == "BYTES"
        and inputs["input"]["shape"] == [-1, 3, 224, 224]
        and outputs["logits"] == {"name": "logits", "datatype": "FP32", "shape": [-1, 1000]},
        json.dumps(meta),
    )
    config = client.get_model_config(model)
    check(
        "model_config",
        config["max_batch_size"] >= 2 and config["output"][0]["dims"] == [1000],
        json.dumps(config),
    )


def bytes_binary():
    image = httpclient.InferInput("image", [2], "BYTES")
    files = np.array([photo("coffee.png"), photo("chelsea.png")], dtype=np.object_)
    image.set_data_from_numpy(files, binary_data=True)
    wanted = [httpclient.InferRequestedOutput("logits", binary_data=True, class_count=3)]
    result = client.infer(model, [image], outputs=wanted)
    top = labels(result)
    check(
        "infer_bytes_binary_classification",
        top[0][0] == "espresso" and top[1][0] in ("tiger cat", "tabby", "Egyptian cat"),
        f"top-1 {top[0][0]!r}, {top[1][0]!r}; rows {result.as_numpy('logits').tolist()}",
    )


def bytes_base64_json():
    image = httpclient.InferInput("image", [1], "BYTES")
    encoded = base64.b64encode(photo("coffee.png")).decode()
    image.set_data_from_numpy(np.array([encoded], dtype=np.object_), binary_data=False)
    # tritonclient has no public setter for a tensor parameter; the v2 base64 convention needs one.
    image._parameters["content_type"] = "base64"
    wanted = [httpclient.InferRequestedOutput("logits", binary_data=False)]
    result = client.infer(model, [image], outputs=wanted)
    logits = result.as_numpy("logits")
    check(
        "infer_bytes_base64_json_logits",
        logits.shape == (1, 1000) and logits.dtype == np.float32 and int(logits.argmax()) == 967,
        f"shape {logits.shape}, argmax {int(logits.argmax())}",
    )


def preprocessed_fp32():
    tensor = np.fromfile(preprocessed, dtype="<f4").reshape(1, 3, 224, 224)
    inp = httpclient.InferInput("input", [1, 3, 224, 224], "FP32")
    inp.set_data_from_numpy(tensor, binary_data=True)
    wanted = [
        httpclient.InferRequestedOutput("logits", binary_data=True, class_count=1),
    ]
    result = client.infer(model, [inp], outputs=wanted)
    top = labels(result)
    check("infer_fp32_tensor_classification", top[0][0] == "espresso", f"top-1 {top[0][0]!r}")
    plain = client.infer(model, [inp])
    logits = plain.as_numpy("logits")
    check(
        "infer_fp32_tensor_logits",
        logits.shape == (1, 1000) and int(logits.argmax()) == 967,
        f"shape {logits.shape}, argmax {int(logits.argmax())}",
    )


def refused(name, status, call):
    try:
        call()
    except InferenceServerException as err:
        check(name, err.status() == status and bool(err.message()), f"{err.status()}: {err.message()}")
        return
    check(name, False, "no error")


def bad_inputs():
    def wrong_datatype():
        inp = httpclient.InferInput("image", [1], "FP32")
        inp.set_data_from_numpy(np.zeros([1], dtype=np.float32))
        client.infer(model, [inp])

    def wrong_shape():
        inp = httpclient.InferInput("input", [1, 3, 8, 8], "FP32")
        inp.set_data_from_numpy(np.zeros([1, 3, 8, 8], dtype=np.float32))
        client.infer(model, [inp])

    def not_an_image():
        inp = httpclient.InferInput("image", [1], "BYTES")
        inp.set_data_from_numpy(np.array([b"not an image"], dtype=np.object_))
        client.infer(model, [inp])

    def unknown_output():
        inp = httpclient.InferInput("image", [1], "BYTES")
        inp.set_data_from_numpy(np.array([photo("coffee.png")], dtype=np.object_))
        client.infer(model, [inp], outputs=[httpclient.InferRequestedOutput("probs")])

    refused("error_wrong_datatype", "400", wrong_datatype)
    refused("error_wrong_shape", "400", wrong_shape)
    refused("error_not_an_image", "422", not_an_image)
    refused("error_unknown_output", "400", unknown_output)
    refused("error_unknown_model", "404", lambda: client.get_model_metadata("no-such-model"))


for step in [health, metadata, bytes_binary, bytes_base64_json, preprocessed_fp32, bad_inputs]:
    attempt(step.__name__, step)
print(f"DONE passed={results['passed']} failed={results['failed']}", flush=True)
sys.exit(1 if results["failed"] else 0)

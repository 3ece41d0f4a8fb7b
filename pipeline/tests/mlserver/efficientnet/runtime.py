"""An MLServer custom runtime for the harness's model, so the tests can drive a v2 server this
project did not write.

Loads inference/model/efficientnet-lite0.onnx with onnxruntime and answers each image of the
BYTES input `image` (base64 content type, as the dispatcher's and load tester's `--v2-bytes
base64` send it) with its top-1 ImageNet label (BYTES output `label`) and the raw logits (FP32
output `logits`). Preprocessing follows inference/model/MODEL.md: RGB, shorter side resized to
256 (bilinear), centre crop 224, scale to [0, 1], then (x - 0.5) / 0.5, NCHW.
"""

import io
from pathlib import Path

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse
from PIL import Image

MODEL_DIR = Path(__file__).resolve().parents[4] / "inference" / "model"
INPUT_SIZE = 224
RESIZE_SHORTER = 256


def preprocess(img):
    """RGB PIL image -> float32 [1, 3, 224, 224]."""
    w, h = img.size
    if w <= h:
        nw, nh = RESIZE_SHORTER, RESIZE_SHORTER * h // w
    else:
        nw, nh = RESIZE_SHORTER * w // h, RESIZE_SHORTER
    img = img.resize((nw, nh), Image.BILINEAR)
    left = round((nw - INPUT_SIZE) / 2.0)
    top = round((nh - INPUT_SIZE) / 2.0)
    img = img.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE))
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - 0.5) / 0.5
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


class EfficientNetRuntime(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(MODEL_DIR / "efficientnet-lite0.onnx"),
            options,
            providers=["CPUExecutionProvider"],
        )
        self._input = self._session.get_inputs()[0].name
        self._labels = (MODEL_DIR / "imagenet-labels.txt").read_text().splitlines()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inputs = [i for i in payload.inputs if i.name == "image"]
        if not inputs:
            raise MLServerError("no input named image", status_code=400)
        # The codec follows the input's content_type parameter (base64 -> bytes).
        images = self.decode(inputs[0])
        labels, logits = [], []
        for data in images:
            try:
                img = Image.open(io.BytesIO(data)).convert("RGB")
            except Exception as err:
                raise MLServerError(f"invalid image: {err}", status_code=400) from err
            row = self._session.run(None, {self._input: preprocess(img)})[0][0]
            logits.append(row.astype(np.float32))
            labels.append(self._labels[int(row.argmax())])
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                StringCodec.encode_output("label", labels),
                NumpyCodec.encode_output("logits", np.stack(logits)),
            ],
        )

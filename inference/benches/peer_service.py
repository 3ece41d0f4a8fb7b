#!/usr/bin/env python3
"""The peer of `cargo bench -p inference`: the same classifier as a FastAPI + Uvicorn service.

What a Python team would deploy per core: one Uvicorn worker (uvloop and httptools when
installed), onnxruntime on one intra-op thread, Pillow for decoding, and the preprocessing of
inference/model/MODEL.md (shorter side 256 bilinear, centre crop 224, mean = std = 0.5), shared
with onnxruntime_baseline.py. POST /infer takes {"image": "<base64>"} and answers the top-5
classes; GET /healthz answers once the model is loaded and warmed up.

Needs: pip install onnxruntime numpy pillow fastapi uvicorn (uvloop httptools)
(scripts/install-onnxruntime.sh --bench installs them into .tools/bench-venv).
"""

import argparse
import base64
import io

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI
from PIL import Image
from pydantic import BaseModel

from onnxruntime_baseline import preprocess


class InferRequest(BaseModel):
    image: str


def build_app(model, labels, input_size, resize_shorter):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    zeros = np.zeros((1, 3, input_size, input_size), dtype=np.float32)
    session.run(None, {input_name: zeros})
    mean = std = [0.5, 0.5, 0.5]
    app = FastAPI()

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "onnxruntime": ort.__version__}

    # `async def`: requests run one after another on the event loop, the best a single core
    # can do (a thread pool would only add switching).
    @app.post("/infer")
    async def infer(body: InferRequest):
        img = Image.open(io.BytesIO(base64.b64decode(body.image))).convert("RGB")
        x = preprocess(img, input_size, resize_shorter, mean, std)
        logits = session.run(None, {input_name: x})[0][0]
        e = np.exp(logits - logits.max())
        p = e / e.sum()
        top = np.argsort(-p)[:5]
        return {
            "predictions": [
                {"label": labels[k], "classId": int(k), "score": float(p[k])} for k in top
            ]
        }

    return app


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--labels", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--resize-shorter", type=int, default=256)
    args = parser.parse_args()
    with open(args.labels) as f:
        labels = f.read().splitlines()
    app = build_app(args.model, labels, args.input_size, args.resize_shorter)
    uvicorn.run(app, host="127.0.0.1", port=args.port, workers=1, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()

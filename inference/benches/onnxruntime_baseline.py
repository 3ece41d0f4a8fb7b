#!/usr/bin/env python3
"""The same model and preprocessing under onnxruntime, the baseline of `cargo bench -p inference`.

Preprocessing follows inference/model/MODEL.md exactly as the service does: RGB, shorter side
resized (Pillow bilinear, antialiased) with the longer side truncated, centre crop rounded half to
even, scale to [0, 1], then (x - mean) / std, NCHW. The model runs on one intra-op thread, like one
worker of the service.

Prints one JSON object on stdout: per-image decode, preprocess and model times (milliseconds) and
the top-1 class of each photo, so the caller can check that both runtimes agree.

Needs: pip install onnxruntime numpy pillow (scripts/install-onnxruntime.sh --bench installs them)
"""

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image


def preprocess(img, input_size, resize_shorter, mean, std):
    """RGB PIL image -> float32 [1, 3, input_size, input_size]."""
    w, h = img.size
    if w <= h:
        nw, nh = resize_shorter, resize_shorter * h // w
    else:
        nw, nh = resize_shorter * w // h, resize_shorter
    img = img.resize((nw, nh), Image.BILINEAR)
    left = round((nw - input_size) / 2.0)
    top = round((nh - input_size) / 2.0)
    img = img.crop((left, top, left + input_size, top + input_size))
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def summary(samples_ms):
    return {
        "mean": statistics.fmean(samples_ms),
        "median": statistics.median(samples_ms),
        "min": min(samples_ms),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--labels", required=True)
    parser.add_argument("--rounds", type=int, default=5, help="passes over the photos")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--resize-shorter", type=int, default=256)
    parser.add_argument("--mean", type=float, nargs=3, default=[0.5, 0.5, 0.5])
    parser.add_argument("--std", type=float, nargs=3, default=[0.5, 0.5, 0.5])
    parser.add_argument("images", nargs="+", help="photo files")
    args = parser.parse_args()

    labels = Path(args.labels).read_text().splitlines()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    photos = [(Path(p).name, Path(p).read_bytes()) for p in args.images]
    decode_ms, preprocess_ms, model_ms = [], [], []
    top1 = {}
    for round_ in range(args.rounds + 1):  # round 0 warms up and is not timed
        for name, data in photos:
            t0 = time.perf_counter()
            img = Image.open(io.BytesIO(data)).convert("RGB")
            t1 = time.perf_counter()
            x = preprocess(img, args.input_size, args.resize_shorter, args.mean, args.std)
            t2 = time.perf_counter()
            logits = session.run(None, {input_name: x})[0][0]
            t3 = time.perf_counter()
            if round_ == 0:
                e = np.exp(logits - logits.max())
                p = e / e.sum()
                k = int(p.argmax())
                top1[name] = {"label": labels[k], "classId": k, "score": float(p[k])}
                continue
            decode_ms.append((t1 - t0) * 1000)
            preprocess_ms.append((t2 - t1) * 1000)
            model_ms.append((t3 - t2) * 1000)

    json.dump(
        {
            "onnxruntime": ort.__version__,
            "images": len(photos),
            "rounds": args.rounds,
            "decodeMs": summary(decode_ms),
            "preprocessMs": summary(preprocess_ms),
            "modelMs": summary(model_ms),
            "top1": top1,
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()

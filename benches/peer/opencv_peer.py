#!/usr/bin/env python3
"""OpenCV's side of the peer harness (cv2.FaceDetectorYN + cv2.FaceRecognizerSF, one thread).

  opencv_peer.py prepare SRC_LIST OUT_512 OUT_12MP   make the test photos
  opencv_peer.py time DIR MODELS REPEATS            per-stage medians as JSON
  opencv_peer.py throughput DIR MODELS REPEATS      loads, warms up, prints `ready`, waits for a line on
                                                    stdin, runs every photo REPEATS times, prints the
                                                    wall-clock start and end (Unix seconds) as JSON
  opencv_peer.py lfw PAIRS ROOT MODELS              10-fold accuracy on an LFW pairs file
  opencv_peer.py names                              the packaged detector and recogniser file names

The models are the manifest's detector and default recogniser, as packaged (models/manifest.toml).
"""

import json
import sys
import time
import tomllib
from pathlib import Path

import cv2
import numpy as np

cv2.setNumThreads(1)
MANIFEST = tomllib.loads((Path(__file__).resolve().parents[2] / "models" / "manifest.toml").read_text())
DETECTOR = MANIFEST["detector"]
RECOGNIZER = next(r for r in MANIFEST["recognizer"] if r["id"] == MANIFEST["default_recognizer"])
DET = Path(DETECTOR["member"]).name
REC = Path(RECOGNIZER["member"]).name
THRESHOLD = RECOGNIZER["threshold"]


def prepare(src_list, out512, out12):
    out512, out12 = Path(out512), Path(out12)
    out512.mkdir(parents=True, exist_ok=True)
    out12.mkdir(parents=True, exist_ok=True)
    for i, src in enumerate(Path(src_list).read_text().split()):
        img = cv2.imread(src)
        h, w = img.shape[:2]
        s = min(h, w)
        square = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
        cv2.imwrite(str(out512 / f"{i:03}.jpg"), cv2.resize(square, (512, 512), interpolation=cv2.INTER_AREA), [cv2.IMWRITE_JPEG_QUALITY, 92])
        scale = (12e6 / (h * w)) ** 0.5  # about 12 MP, aspect kept, like a phone selfie
        big = cv2.resize(img, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(out12 / f"{i:03}.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 90])


class Pipeline:
    def __init__(self, models):
        self.det = cv2.FaceDetectorYN.create(str(Path(models) / DET), "", (320, 320),
                                            DETECTOR["score_threshold"], DETECTOR["nms_iou_threshold"], 5000)
        self.rec = cv2.FaceRecognizerSF.create(str(Path(models) / REC), "")

    def template(self, data, t):
        t0 = time.perf_counter()
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        t1 = time.perf_counter()
        h, w = img.shape[:2]
        s = min(1.0, 640 / max(h, w))  # detect at <= 640, as wajah's first pass does
        small = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else img
        self.det.setInputSize((small.shape[1], small.shape[0]))
        _, faces = self.det.detect(small)
        t2 = time.perf_counter()
        if faces is None:
            return None
        face = max(faces, key=lambda f: f[2] * f[3])
        aligned = self.rec.alignCrop(small, face)
        t3 = time.perf_counter()
        feat = self.rec.feature(aligned)
        t4 = time.perf_counter()
        for k, v in zip(("decode_ms", "detect_ms", "align_ms", "embed_ms", "total_ms"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
            t.setdefault(k, []).append(v * 1e3)
        f = feat.flatten()
        return f / np.linalg.norm(f)


def time_dir(d, models, repeats):
    p = Pipeline(models)
    photos = [f.read_bytes() for f in sorted(Path(d).iterdir())]
    for data in photos[:2]:
        p.template(data, {})
    t = {}
    for _ in range(int(repeats)):
        for data in photos:
            p.template(data, t)
    print(json.dumps({"photos": len(photos), "opencv": cv2.__version__, **{k: float(np.median(v)) for k, v in t.items()}}))


def throughput(d, models, repeats):
    p = Pipeline(models)
    photos = [f.read_bytes() for f in sorted(Path(d).iterdir())]
    for data in photos[:2]:
        p.template(data, {})
    work = photos * int(repeats)
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.time()
    templates = sum(p.template(data, {}) is not None for data in work)
    end = time.time()
    print(json.dumps({"photos": len(work), "templates": templates, "workers": 1, "start": start, "end": end}))


def lfw(pairs, root, models):
    p = Pipeline(models)
    lines = [l.split() for l in Path(pairs).read_text().splitlines() if l.strip()]
    body = lines[1:]
    path = lambda n, i: Path(root) / n / f"{n}_{int(i):04}.jpg"
    cache, scored = {}, []
    for k, t in enumerate(body):
        a, b, same = (path(t[0], t[1]), path(t[0], t[2]), True) if len(t) == 3 else (path(t[0], t[1]), path(t[2], t[3]), False)
        for f in (a, b):
            if f not in cache:
                cache[f] = p.template(f.read_bytes(), {})
        if cache[a] is None or cache[b] is None:
            continue
        scored.append((float(cache[a] @ cache[b]), same))
    # Same protocol as `wajah eval`: 10 balanced folds in order, threshold from the other nine.
    folds, counts = [], {True: 0, False: 0}
    n = {s: sum(1 for x in scored if x[1] == s) for s in (True, False)}
    for score, same in scored:
        folds.append(counts[same] * 10 // max(n[same], 1))
        counts[same] += 1
    acc = lambda xs, th: sum((s >= th) == y for s, y in xs) / max(len(xs), 1)
    accs = []
    for k in range(10):
        train = [x for x, f in zip(scored, folds) if f != k]
        test = [x for x, f in zip(scored, folds) if f == k]
        ss = sorted({s for s, _ in train})
        cands = [(a + b) / 2 for a, b in zip(ss, ss[1:])] + [ss[0] - 1e-3, ss[-1] + 1e-3]
        th = max(cands, key=lambda c: (acc(train, c), -c))
        accs.append(acc(test, th))
    print(json.dumps({"opencv": cv2.__version__, "pairs": len(body), "scored": len(scored), "accuracy_mean": float(np.mean(accs)), "accuracy_std": float(np.std(accs)),
                      "threshold": THRESHOLD, "accuracy_at_threshold": acc(scored, THRESHOLD)}))


def names():
    print(DET, REC)


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"prepare": prepare, "time": time_dir, "throughput": throughput, "lfw": lfw, "names": names}[cmd](*args)

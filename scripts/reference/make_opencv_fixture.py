#!/usr/bin/env python3
"""Write the OpenCV reference fixture that wajah's tests compare against.

For each listed testdata photo: cv2.imread (BGR, EXIF applied), cv2.FaceDetectorYN at the photo's own
size (the manifest's score and NMS thresholds, 0.6 and 0.3; top-k 5000), then for every face
cv2.FaceRecognizerSF.alignCrop + feature on the ORIGINAL model files from the pinned package (not wajah's
rewritten copies), so the fixture also checks wajah's model fixes. The detector and the default
recogniser, their packaged names and sha256, come from models/manifest.toml.

Usage: make_opencv_fixture.py [MODEL_DIR]   (default .cache/models/original, filled by `make setup`)
Writes testdata/reference/opencv_yunet_sface.json.
"""

import hashlib
import json
import sys
import tomllib
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = ROOT / "testdata"
OUT = TESTDATA / "reference" / "opencv_yunet_sface.json"
MANIFEST = tomllib.loads((ROOT / "models" / "manifest.toml").read_text())
DET = MANIFEST["detector"]
REC = next(r for r in MANIFEST["recognizer"] if r["id"] == MANIFEST["default_recognizer"])
# (packaged file name, its sha256): the files OpenCV runs.
DETECTOR = (Path(DET["member"]).name, DET["original_sha256"])
RECOGNIZER = (Path(REC["member"]).name, REC["original_sha256"])
SCORE, NMS, TOP_K = DET["score_threshold"], DET["nms_iou_threshold"], 5000

# Photos of different sizes and kinds: lossless (PNG, PGM, GIF), JPEGs from 150 px to 1600 px, several
# multi-face photos.
PHOTOS = [
    "identities/orl_s1/1.pgm",
    "identities/dj_John_Salley/000183_02159543.jpg",
    "robustness/yalefaces__subject01__subject01.glasses.gif",
    "identities/fr_obama/obama_small.jpg",
    "identities/fr_obama/obama-240p.jpg",
    "identities/fr_alex_lacamoire/alex-lacamoire.png",
    "multi_face/2008_001322.jpg",
    "multi_face/kit_with_rose.jpg",
    "identities/df_angelina/img10.jpg",
    "identities/of_carell/carell.jpg",
    "identities/fr_obama/obama.jpg",
    "identities/df_jennifer/img53.jpg",
    "multi_face/two_people.jpg",
    "identities/df_elon/img18.jpg",
    "identities/df_jack/img59.jpg",
    "robustness/face_recognition___format__32bit.png",
]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    model_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".cache" / "models" / "original"
    for name, digest in (DETECTOR, RECOGNIZER):
        if sha256(model_dir / name) != digest:
            sys.exit(f"{model_dir / name}: unexpected sha256")
    cv2.setNumThreads(1)
    recognizer = cv2.FaceRecognizerSF.create(str(model_dir / RECOGNIZER[0]), "")
    photos = []
    for rel in PHOTOS:
        img = cv2.imread(str(TESTDATA / rel), cv2.IMREAD_COLOR)
        if img is None:
            sys.exit(f"OpenCV cannot read {rel}")
        h, w = img.shape[:2]
        detector = cv2.FaceDetectorYN.create(str(model_dir / DETECTOR[0]), "", (w, h), SCORE, NMS, TOP_K)
        detector.setInputSize((w, h))
        _, found = detector.detect(img)
        faces = []
        for row in [] if found is None else found:
            aligned = recognizer.alignCrop(img, row)
            feature = recognizer.feature(aligned).flatten().astype(np.float64)
            faces.append({
                "bbox": [float(v) for v in row[0:4]],
                "landmarks": [[float(row[4 + 2 * k]), float(row[5 + 2 * k])] for k in range(5)],
                "score": float(row[14]),
                "aligned_mean_bgr": [float(v) for v in aligned.reshape(-1, 3).mean(axis=0)],
                "feature_raw": [float(v) for v in feature],
                "feature_unit": [float(v) for v in feature / np.linalg.norm(feature)],
            })
        print(f"{rel}: {w}x{h}, {len(faces)} face(s)")
        photos.append({"file": rel, "width": w, "height": h, "faces": faces})
    fixture = {
        "generator": "scripts/reference/make_opencv_fixture.py",
        "opencv_version": cv2.__version__,
        "models": {
            "detector": {"file": DETECTOR[0], "sha256": DETECTOR[1]},
            "recognizer": {"file": RECOGNIZER[0], "sha256": RECOGNIZER[1]},
        },
        "params": {"score_threshold": SCORE, "nms_threshold": NMS, "top_k": TOP_K, "input": "native size"},
        "notes": "cv2.imread IMREAD_COLOR (BGR, EXIF applied, alpha dropped); FaceRecognizerSF.feature swaps "
                 "the BGR crop to RGB itself. Boxes are [x, y, w, h]; landmarks right eye, left eye, nose, "
                 "right and left mouth corners.",
        "photos": photos,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

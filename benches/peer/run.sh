#!/usr/bin/env bash
# Peer harness: wajah vs OpenCV 5.0's own FaceDetectorYN + FaceRecognizerSF, same photos, same thread
# count (1), same run. Prints per-stage medians and the wajah/OpenCV ratio for 512x512 photos and
# for ~12 MP phone-size JPEGs, and the LFW-mini accuracy of both. Needs `make setup`.
set -euo pipefail
cd "$(dirname "$0")/../.."
KIT=${KIT:-../shared/testkit}
REPEATS=${REPEATS:-3}
VENV=.venv-peer5
export OPENCV_LOG_LEVEL=ERROR
[ -x $VENV/bin/python ] || python3 -m venv $VENV
$VENV/bin/python -c "import cv2; assert cv2.__version__ == '5.0.0'" 2>/dev/null ||
  $VENV/bin/pip install -q --require-hashes -r benches/peer/requirements.txt
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# OpenCV 5 gets the original files (the manifest's detector and default recogniser, as packaged),
# except that SFace's stale graph inputs (which it refuses) are removed; it keeps its PRelu nodes.
MODELS=$WORK/models
mkdir -p $MODELS
read -r DET REC < <($VENV/bin/python benches/peer/opencv_peer.py names)
cp ".cache/models/original/$DET" $MODELS/
.cache/venv-models/bin/python models/fix_models.py --stale-inputs-only \
  ".cache/models/original/$REC" "$MODELS/$REC" >/dev/null
ls testdata/identities/{df,fr,of}_*/*.jpg | head -12 > "$WORK/sources"
$VENV/bin/python benches/peer/opencv_peer.py prepare "$WORK/sources" "$WORK/512" "$WORK/12mp"
cargo build --release -q -p wajah-benches --bin peer
cargo build --release -q -p wajah-cli
# The two sides take turns, ROUNDS short rounds each, so that a slow spell of a shared machine hits
# both: the speed-up is the median of the rounds' ratios, and the stage figures are medians over the
# rounds of each round's per-photo medians.
ROUNDS=${ROUNDS:-7}
report() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, statistics, sys
name = sys.argv[1]
w = [json.loads(l) for l in sys.argv[2].split("\n") if l.strip()]
o = [json.loads(l) for l in sys.argv[3].split("\n") if l.strip()]
med = lambda rows, k: statistics.median(r[k] for r in rows)
print(f"\n{name}: {w[0]['photos']} photos, 1 thread, median ms per photo over {len(w)} alternating rounds")
print(f"{'stage':10} {'wajah':>9} {'opencv ' + o[0]['opencv']:>13} {'wajah/opencv':>13}")
for k in ("decode_ms", "detect_ms", "align_ms", "embed_ms", "total_ms"):
    print(f"{k[:-3]:10} {med(w, k):9.2f} {med(o, k):13.2f} {med(w, k) / med(o, k):13.2f}")
ratios = [b["total_ms"] / a["total_ms"] for a, b in zip(w, o)]
print(f"speed-up (OpenCV / wajah, whole path): {statistics.median(ratios):.2f}x, median of rounds "
      + ", ".join(f"{r:.2f}" for r in ratios))
PY
}
for SET in 512 12mp; do
  W=""; O=""
  for _ in $(seq "$ROUNDS"); do
    W+=$(./target/release/peer "$WORK/$SET" "$REPEATS")$'\n'
    O+=$($VENV/bin/python benches/peer/opencv_peer.py time "$WORK/$SET" $MODELS "$REPEATS")$'\n'
  done
  report "$SET" "$W" "$O"
done
echo
./target/release/wajah eval --pairs $KIT/lfw_mini/pairs_mini.txt --root $KIT/lfw_mini --out "$WORK/lfw.json" >/dev/null
python3 -c "import json; r=json.load(open('$WORK/lfw.json')); print(f\"lfw_mini wajah : 10-fold accuracy {r['ten_fold']['accuracy_mean']:.4f} +- {r['ten_fold']['accuracy_std']:.4f}, at threshold {r['accuracy_at_threshold']:.4f}\")"
$VENV/bin/python benches/peer/opencv_peer.py lfw $KIT/lfw_mini/pairs_mini.txt $KIT/lfw_mini $MODELS | python3 -c "import json,sys; r=json.load(sys.stdin); print(f\"lfw_mini opencv {r['opencv']}: 10-fold accuracy {r['accuracy_mean']:.4f} +- {r['accuracy_std']:.4f}, at {r['threshold']} {r['accuracy_at_threshold']:.4f}\")"

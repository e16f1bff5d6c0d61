#!/usr/bin/env bash
# Peer harness: wajah vs OpenCV 5.0's own FaceDetectorYN + FaceRecognizerSF, same photos, same thread
# count (1), same run. Prints per-stage medians and the wajah/OpenCV ratio for 512x512 photos and
# for ~12 MP phone-size JPEGs, photos/s on 2 cores (two processes each side), and the LFW-mini
# accuracy of both. Needs `make setup`.
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
# Throughput on 2 cores: two processes of 1 inference thread each side, every process running all
# the photos THROUGHPUT_REPEATS times; also one process (the 1-core figure) and one wajah process
# with 2 workers (2 sessions, a rayon pool of 2). Each process loads and warms up, prints `ready`
# and waits on stdin; all are released together, and photos/s is the photos of all of them over
# the span from the first start to the last end (their Unix clocks). Configurations take turns,
# THROUGHPUT_ROUNDS rounds. `others` is the CPU that other processes took meanwhile (busy time in
# /proc/stat less this section's children's), in cores: above ~0.1 the 2-process figures are low.
THROUGHPUT_REPEATS=${THROUGHPUT_REPEATS:-2}
THROUGHPUT_ROUNDS=${THROUGHPUT_ROUNDS:-5}
python3 - ./target/release/peer $VENV/bin/python benches/peer/opencv_peer.py $MODELS "$WORK" \
  "$THROUGHPUT_REPEATS" "$THROUGHPUT_ROUNDS" <<'PY'
import json, os, statistics, subprocess, sys, time
peer, python, script, models, work = sys.argv[1:6]
repeats, rounds = int(sys.argv[6]), int(sys.argv[7])
others = []  # (CPU seconds of other processes, wall seconds) per run

def busy_s():
    v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait

def photos_per_s(cmds):
    t0, b0, c0 = time.time(), busy_s(), sum(os.times()[2:4])
    ps = [subprocess.Popen(c, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for c in cmds]
    for p in ps:
        if p.stdout.readline().strip() != "ready":
            sys.exit(f"not ready: {p.args}")
    for p in ps:
        p.stdin.write("\n")
        p.stdin.flush()
    rs = [json.loads(p.stdout.readline()) for p in ps]
    for p in ps:
        p.wait()
    if any(r["templates"] != r["photos"] for r in rs):
        sys.exit(f"a photo without a template: {rs}")
    others.append((busy_s() - b0 - (sum(os.times()[2:4]) - c0), time.time() - t0))
    return sum(r["photos"] for r in rs) / (max(r["end"] for r in rs) - min(r["start"] for r in rs))

med = statistics.median
ratio = lambda a, b: med(x / y for x, y in zip(a, b))
n = len(os.listdir(f"{work}/512"))
print(f"\nthroughput, photos/s on 2 cores, 1 inference thread per process or worker, {n} photos {repeats}x per"
      f" process ({2 * repeats}x for 1p2w), median of {rounds} alternating rounds (x1p, wajah/opencv: median of"
      " the rounds' ratios)")
print(f"{'set':5} {'wajah 1p':>9} {'wajah 2p':>9} {'x1p':>5} {'wajah 1p2w':>11} {'x1p':>5}"
      f" {'opencv 1p':>10} {'opencv 2p':>10} {'x1p':>5} {'wajah/opencv 2p':>16} {'others':>7}")
for s in ("512", "12mp"):
    d = f"{work}/{s}"
    w = lambda workers, reps: [peer, "--throughput", str(workers), d, str(reps)]
    o = [python, script, "throughput", d, models, str(repeats)]
    g = {k: [] for k in ("w1", "o1", "w2", "o2", "w1x2")}
    others.clear()
    for _ in range(rounds):
        g["w1"].append(photos_per_s([w(1, repeats)]))
        g["o1"].append(photos_per_s([o]))
        g["w2"].append(photos_per_s([w(1, repeats)] * 2))
        g["o2"].append(photos_per_s([o] * 2))
        g["w1x2"].append(photos_per_s([w(2, 2 * repeats)]))
    print(f"{s:5} {med(g['w1']):9.1f} {med(g['w2']):9.1f} {ratio(g['w2'], g['w1']):5.2f} {med(g['w1x2']):11.1f}"
          f" {ratio(g['w1x2'], g['w1']):5.2f} {med(g['o1']):10.1f} {med(g['o2']):10.1f} {ratio(g['o2'], g['o1']):5.2f}"
          f" {ratio(g['w2'], g['o2']):16.2f} {sum(c for c, _ in others) / sum(t for _, t in others):7.2f}"
          "   rounds " + ", ".join(f"{a / b:.2f}" for a, b in zip(g["w2"], g["o2"])), flush=True)
PY
echo
./target/release/wajah eval --pairs $KIT/lfw_mini/pairs_mini.txt --root $KIT/lfw_mini --out "$WORK/lfw.json" >/dev/null
python3 -c "import json; r=json.load(open('$WORK/lfw.json')); print(f\"lfw_mini wajah : 10-fold accuracy {r['ten_fold']['accuracy_mean']:.4f} +- {r['ten_fold']['accuracy_std']:.4f}, at threshold {r['accuracy_at_threshold']:.4f}\")"
$VENV/bin/python benches/peer/opencv_peer.py lfw $KIT/lfw_mini/pairs_mini.txt $KIT/lfw_mini $MODELS | python3 -c "import json,sys; r=json.load(sys.stdin); print(f\"lfw_mini opencv {r['opencv']}: 10-fold accuracy {r['accuracy_mean']:.4f} +- {r['accuracy_std']:.4f}, at {r['threshold']} {r['accuracy_at_threshold']:.4f}\")"

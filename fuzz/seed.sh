#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from testdata/ and the repository's own files. Idempotent; the corpus
# is not committed (libFuzzer adds what it finds there). Run from anywhere.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
corpus=$here/corpus
mkdir -p "$corpus"/{decode,nik,config,request_json,index_file,sealed_row}

# decode: every photo under testdata (all formats, testdata/jpeg2000 included) up to 1 MB, named by
# content so reruns do not duplicate.
find "$root/testdata" -type f -size -1024k \
    \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' -o -iname '*.gif' -o -iname '*.pgm' \
    -o -iname '*.ppm' -o -iname '*.bmp' -o -iname '*.webp' -o -iname '*.jp2' -o -iname '*.j2k' \) -print0 |
    while IFS= read -r -d '' f; do cp "$f" "$corpus/decode/$(sha1sum "$f" | cut -c1-16).${f##*.}"; done

python3 - "$root" "$corpus" <<'PY'
import json, struct, sys, zlib
from pathlib import Path

root, corpus = Path(sys.argv[1]), Path(sys.argv[2])

def put(target, name, data):
    (corpus / target / name).write_bytes(data if isinstance(data, bytes) else data.encode())

# decode: tiny images of the formats testdata lacks (BMP, PPM, WebP lossless) or has only large.
w, h = 4, 3
pixels = bytes((x * 60 + y * 20) % 256 for y in range(h) for x in range(w * 3))
row = w * 3 + (-(w * 3) % 4)
bmp_pixels = b"".join(pixels[y * w * 3:(y + 1) * w * 3].ljust(row, b"\0") for y in reversed(range(h)))
put("decode", "tiny.bmp", b"BM" + struct.pack("<IHHI", 54 + len(bmp_pixels), 0, 0, 54)
    + struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(bmp_pixels), 2835, 2835, 0, 0) + bmp_pixels)
put("decode", "tiny.ppm", b"P6\n4 3\n255\n" + pixels)
put("decode", "tiny.pgm", b"P5\n4 3\n255\n" + pixels[:12])
def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
raw = b"".join(b"\0" + pixels[y * w * 3:(y + 1) * w * 3] for y in range(h))
put("decode", "tiny.png", b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
# A 1x1 lossless WebP.
put("decode", "tiny.webp", bytes.fromhex(
    "524946461a000000574542505650384c0d0000002f0000001007101111888 8fe0700".replace(" ", "")))

# nik: valid NIKs (a man, a woman, 29 February), and near misses.
for i, nik in enumerate(["3201011505900001", "3201015505900002", "3171012902000003", " 3201011505900001\n",
                         "3201011505900000", "9901011505900001", "3201013202900001", "32010115059000011",
                         "320101150590000a", "3201011505900001".replace("1", "١", 1)]):
    put("nik", f"nik-{i}", nik)

# config: the model manifest, a calibration file, a server file with every section.
put("config", "manifest.toml", (root / "models/manifest.toml").read_text())
put("config", "calibration.toml", """model = "sface-2021dec@1a2b3c4d"
threshold = 0.363
target_fmr = 0.001
threshold_ci95 = [0.35, 0.38]
fnmr = 0.012
genuine_pairs = 3000
impostor_pairs = 3000
source = "testdata/pairs.csv"
created_unix = 1760000000
""")
put("config", "server.toml", """listen = "127.0.0.1:9000"
data_dir = ".cache/data"
template_key_file = "/run/secrets/template.key"
old_template_key_files = ["old.key"]
api_key_sha256 = ["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]
workers = 3
max_body_mib = 15
body_budget_mib = 64
request_timeout_secs = 30
header_timeout_secs = 10
body_timeout_secs = 20
rate_per_key = 50.0
burst_per_key = 100.0
audit_retention_days = 365
max_connections = 1024

[engine]
models_dir = ".cache/models"
onnxruntime = ".cache/onnxruntime/libonnxruntime.so"
manifest = "models/manifest.toml"
recognizer = "sface"
intra_threads = 1
sessions = 1
threshold = 0.4
calibration = "models/calibration.toml"
face_policy = "largest"
reject_low_quality = true

[engine.detect]
max_side = 640
min_side = 256
refine = true
refine_size = 256
refine_context = 1.6

[engine.quality]
min_interocular_px = 16.0
min_face_score = 0.75
min_detection_score = 0.9
min_sharpness = 15.0
min_brightness = 40.0
max_brightness = 220.0
max_yaw = 0.35
max_roll_deg = 25.0

[engine.limits]
max_bytes = 26214400
max_width = 12000
max_height = 12000
max_pixels = 50000000
max_decoded_bytes = 200000000

[index]
kind = "auto"
hnsw_from = 20000
max_connections = 24
ef_construction = 200
ef_search = 128
rebuild_ratio = 0.2
""")
put("config", "engine.toml", 'face_policy = "single"\nthreshold = -0.5\n[limits]\nmax_pixels = 1\n')

# request_json: the first byte picks the request (0 enrol, 1 verify, 2 compare, 3 identify,
# 4 detect) and, with 0x80 set, multipart instead of JSON.
photo = (root / "testdata/jpeg2000/obama_id_grey16.j2k").read_bytes()[:64]
import base64
b64 = base64.b64encode(photo).decode()
jsons = [{"nik": "3201011505900001", "photo": b64}, {"nik": "3201011505900001", "selfie": b64},
         {"photo_a": b64, "photo_b": b64, "include_crops": True}, {"photo": b64, "k": 5}, {"photo": b64}]
for i, body in enumerate(jsons):
    put("request_json", f"json-{i}", bytes([i]) + json.dumps(body).encode())
put("request_json", "json-dup", b"\x01" + b'{"nik":"3201011505900001","nik":"3201011505900002","selfie":""}')
def multipart(fields):
    out = b""
    for name, value in fields:
        disposition = f'Content-Disposition: form-data; name="{name}"'
        if isinstance(value, bytes):
            disposition += f'; filename="{name}.jpg"\r\nContent-Type: image/jpeg'
        else:
            value = value.encode()
        out += b"--FUZZ\r\n" + disposition.encode() + b"\r\n\r\n" + value + b"\r\n"
    return out + b"--FUZZ--\r\n"
forms = [[("nik", "3201011505900001"), ("photo", photo)], [("nik", "3201011505900001"), ("selfie", photo)],
         [("photo_a", photo), ("photo_b", photo), ("include_crops", "true")], [("photo", photo), ("k", "5")],
         [("photo", photo)]]
for i, form in enumerate(forms):
    put("request_json", f"multipart-{i}", bytes([0x80 | i]) + multipart(form))
put("request_json", "multipart-dup", b"\x84" + multipart([("photo", photo), ("photo", photo)]))

# index_file: saved indexes (format 1: magic, dim, count, then per entry a u32 id length, the id
# and dim little-endian f32): empty, 3 entries, and 9 (over the fuzz target's HNSW threshold).
def index(dim, subjects):
    out = b"WAJAHIX1" + struct.pack("<QQ", dim, len(subjects))
    for n, s in enumerate(subjects):
        out += struct.pack("<I", len(s)) + s.encode()
        out += struct.pack(f"<{dim}f", *[((n * 7 + j * 3) % 11 - 5) / 5 or 0.5 for j in range(dim)])
    return out
put("index_file", "empty", index(4, []))
put("index_file", "three", index(4, ["3201011505900001", "3201015505900002", "a"]))
put("index_file", "nine", index(8, [f"s{n}" for n in range(9)]))

# sealed_row: mode, then length-prefixed lookup, model, key id, nonce, and the rest. Mode 1: the
# rest is a payload sealed by the target (subject, photo sha256, quality JSON, then the floats).
def fields(*parts):
    return b"".join(bytes([len(p)]) + p for p in parts)
head = fields(b"\x11" * 32, b"sface@1a2b3c4d", b"k00000000", b"\0" * 12)
payload = b"".join(struct.pack("<I", len(f)) + f for f in
                   [b"3201011505900001", b"ab" * 32, json.dumps({"ok": True}).encode()])
payload += struct.pack("<4f", 0.5, -0.5, 0.5, 0.5)
put("sealed_row", "payload", b"\x01" + head + payload)
put("sealed_row", "forged", b"\x00" + head + b"\x42" * 48)
put("sealed_row", "other-key", b"\x02" + head + b"\x42" * 48)
PY
echo "seeded: $(for t in "$corpus"/*; do printf '%s=%s ' "$(basename "$t")" "$(ls "$t" | wc -l)"; done)"

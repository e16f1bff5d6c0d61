#!/usr/bin/env python3
"""Rebuild testdata/liveness/ (poses.csv, bona_fide.csv, poses/) from ../shared/testkit.

The direction labels below were made by eye (see testdata/liveness/README.md); this script only
copies the labelled photos byte for byte, hashes them and writes the two CSV files.

Usage (from the repository root):  python3 scripts/liveness/build_poses.py [--testkit ../shared/testkit]
"""
import argparse
import csv
import hashlib
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "testdata" / "liveness"

LICENCES = {
    "orl_faces": "ORL faces: credit AT&T Laboratories Cambridge",
    "face_recognition": "MIT",
    "insightface": "insightface sample images: non-commercial research only",
}

# (testkit path, direction, identity)
ORL = {
    "straight": "s1_1 s1_3 s2_1 s3_9 s4_1 s7_1 s9_8 s10_5 s11_1 s14_1 s16_2 s22_3 s23_1 s23_7 "
                "s25_1 s26_1 s28_2 s33_1 s36_8 s38_2 s39_1",
    "turn_left": "s1_2 s1_5 s1_10 s3_2 s4_5 s4_10 s8_4 s9_10 s10_4 s13_6 s16_7 s18_1 s23_2 s23_5 "
                 "s23_8 s25_2 s26_4 s26_5 s26_10 s28_8 s30_3 s32_7 s38_8 s39_7 s39_8",
    "turn_right": "s1_4 s1_6 s4_6 s5_5 s6_9 s9_7 s10_9 s17_10 s23_6 s23_9 s24_3 s25_8 s26_2 "
                  "s28_10 s29_8 s35_3 s38_9 s39_3 s40_7",
    "look_up": "s1_9 s15_6 s16_9 s26_7 s36_2 s36_6",
    "look_down": "s3_6 s31_1 s37_8",
}
OTHER = [
    ("identities/fr_obama/obama_small.jpg", "straight", "fr_obama"),
    ("identities/fr_obama/obama1.jpg", "turn_left", "fr_obama"),
    ("identities/fr_obama/obama2.jpg", "turn_right", "fr_obama"),
    ("robustness/insightface___robustness__pose_rise_face.jpeg", "look_up", "if_pose_rise_face"),
    ("robustness/insightface___robustness__pose_lower_face.jpeg", "look_down", "if_pose_lower_face"),
]

# sequence name -> steps; each step is (direction, flat file name under poses/)
SEQUENCES = {
    "orl_s1_a": "straight:s1_1 turn_left:s1_5 turn_right:s1_6 look_up:s1_9",
    "orl_s1_b": "straight:s1_3 turn_right:s1_4 turn_left:s1_10",
    "orl_s3": "straight:s3_9 turn_left:s3_2 look_down:s3_6",
    "orl_s4": "straight:s4_1 turn_right:s4_6 turn_left:s4_10",
    "orl_s9": "straight:s9_8 turn_left:s9_10 turn_right:s9_7",
    "orl_s10": "straight:s10_5 turn_right:s10_9 turn_left:s10_4",
    "orl_s16": "straight:s16_2 look_up:s16_9 turn_left:s16_7",
    "orl_s23_a": "straight:s23_1 turn_left:s23_5 turn_right:s23_9",
    "orl_s23_b": "straight:s23_7 turn_right:s23_6 turn_left:s23_8",
    "orl_s25": "straight:s25_1 turn_left:s25_2 turn_right:s25_8",
    "orl_s26": "straight:s26_1 turn_left:s26_4 turn_right:s26_2 look_up:s26_7",
    "orl_s28": "straight:s28_2 turn_right:s28_10 turn_left:s28_8",
    "orl_s38": "straight:s38_2 turn_left:s38_8 turn_right:s38_9",
    "orl_s39": "straight:s39_1 turn_right:s39_3 turn_left:s39_7",
    "fr_obama": "straight:fr_obama_obama_small.jpg turn_left:fr_obama_obama1.jpg turn_right:fr_obama_obama2.jpg",
}


def flat_name(path: str) -> str:
    parts = path.split("/")
    if parts[0] == "identities":
        return f"{parts[1]}_{parts[2]}"
    return "if_" + parts[-1].split("__")[-1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--testkit", default=str(ROOT.parent / "shared" / "testkit"))
    testkit = Path(ap.parse_args().testkit)
    manifest = {r["path"]: r for r in csv.DictReader(open(testkit / "MANIFEST.csv", newline=""))}

    items = []
    for direction, keys in ORL.items():
        for key in keys.split():
            person, img = key.split("_")
            items.append((f"identities/orl_{person}/{img}.pgm", direction, f"orl_{person}"))
    items += OTHER

    (OUT / "poses").mkdir(parents=True, exist_ok=True)
    rows, by_direction = [], {}
    for src, direction, ident in items:
        copied_from = manifest[src]["copied_from"]
        licence = LICENCES[copied_from.split("/")[0]]
        name = flat_name(src)
        dst = OUT / "poses" / name
        shutil.copyfile(testkit / src, dst)
        data = dst.read_bytes()
        assert len(data) <= 300_000, src
        rows.append([f"liveness/poses/{name}", direction, ident, copied_from, licence,
                     hashlib.sha256(data).hexdigest()])
        by_direction.setdefault(direction, 0)
        by_direction[direction] += 1
    with open(OUT / "poses.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["file", "direction", "identity", "source", "licence", "sha256"])
        w.writerows(rows)

    label = {r[0]: r[1] for r in rows}
    ident_of = {r[0]: r[2] for r in rows}
    used = set()
    with open(OUT / "bona_fide.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["sequence", "step", "file"])
        for seq, steps in SEQUENCES.items():
            idents = set()
            for i, step in enumerate(steps.split()):
                direction, key = step.split(":")
                name = key if "." in key else f"orl_{key}.pgm"
                file = f"liveness/poses/{name}"
                assert label[file] == direction, (seq, file, label[file], direction)
                assert (i == 0) == (direction == "straight"), (seq, step)
                assert file not in used, file  # no photo is used by two sequences
                used.add(file)
                idents.add(ident_of[file])
                w.writerow([seq, direction, file])
            assert len(idents) == 1, seq
    print(by_direction, "sequences:", len(SEQUENCES))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Rebuild the labelled capture-compliance pool (eyeglasses, sunglasses, mask, face_occluded).

The labels are committed in testdata/capture/labels_pool.csv; the photos are not. This script copies
every listed photo byte for byte from where it already sits on this machine:

  testkit/...                  from --testkit (../shared/testkit)
  Face-Mask-Detection/...      from the mirrored git repository chandrikadeb7/Face-Mask-Detection
  Selfies-with-sunglasses/...  from the mirrored git repository shreyas0906/Selfies-with-sunglasses

and checks the sha256 of each file against the labels. It fetches nothing.

--mirror is the folder that holds the mirrored (bare) repositories, one per source, found as
<mirror>/<owner>+<name>/repo, <mirror>/<owner>+<name>, <mirror>/<name>.git or <mirror>/<name>.
Files are read at the commit recorded below; if the mirror lacks that commit, at its HEAD (the sha256
check still decides).

Writes <out>/<path> for every row and <out>/labels.csv (the pool rows plus `file`, the copy's path
relative to <out>). Rows are processed in path order; a copy already present with the right sha256 is
kept. Exit status 1 if any file is missing or differs.

  --write-eval   also (re)write testdata/capture/eval/ and testdata/capture/eval.csv from the rows with
                 split=eval whose notes do not start with EXCLUDE and whose source is in COMMITTABLE, and the capture/eval/ rows of
                 testdata/ORIGINS.csv. A photo already committed elsewhere in testdata/ (same sha256 in
                 ORIGINS.csv) is referenced there, not copied again.
  --verify-eval  only check that every file listed in testdata/capture/eval.csv has its sha256.

Usage:
  python3 scripts/capture/build_dataset.py --testkit ../shared/testkit --mirror /work/.mirror
  python3 scripts/capture/build_dataset.py --verify-eval
"""

import argparse
import csv
import hashlib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = ROOT / "testdata"
CAPTURE = TESTDATA / "capture"
LABELS = CAPTURE / "labels_pool.csv"
EVAL_DIR = CAPTURE / "eval"
EVAL_CSV = CAPTURE / "eval.csv"

# First path element of a pool row -> the git repository it was copied from and the commit read.
GIT_SOURCES = {
    "Face-Mask-Detection": ("chandrikadeb7/Face-Mask-Detection", "7e500749401bad4bb338790fbdb89b58e41ef2d9"),
    "Selfies-with-sunglasses": ("shreyas0906/Selfies-with-sunglasses", "4bad939781b2cb5527c7c5a1f6f1d2cd54c38fda"),
}
# Sources whose photos may be committed to testdata/capture/eval/ (redistributable under their recorded
# licence); rows of other sources are always split=train. See testdata/capture/README.md.
COMMITTABLE = {
    "testkit:deepface",
    "testkit:face_recognition",
    "testkit:openface",
    "testkit:dlib_johns",
    "testkit:orl_faces",
    # MIT as a repository; its photos were collected from the web (see testdata/capture/README.md).
    "Face-Mask-Detection",
}
LABEL_COLS = ["eyeglasses", "sunglasses", "mask", "face_occluded"]
EVAL_COLS = ["file", *LABEL_COLS, "source", "licence", "copied_from", "sha256", "notes"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def find_git_dir(mirror: Path, repo: str) -> Path | None:
    owner, name = repo.split("/")
    for cand in (mirror / f"{owner}+{name}" / "repo", mirror / f"{owner}+{name}", mirror / f"{name}.git", mirror / name):
        if (cand / "HEAD").is_file() or (cand / ".git" / "HEAD").is_file():
            return cand
    return None


class GitReader:
    """Reads blobs of one repository through a single `git cat-file --batch` process."""

    def __init__(self, git_dir: Path, commit: str):
        self.git_dir = git_dir
        probe = subprocess.run(
            ["git", "--git-dir", str(git_dir), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True
        )
        self.rev = commit if probe.returncode == 0 else "HEAD"
        if self.rev == "HEAD":
            print(f"warning: {git_dir} lacks commit {commit}; reading HEAD", file=sys.stderr)
        self.proc = subprocess.Popen(
            ["git", "--git-dir", str(git_dir), "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )

    def read(self, path: str) -> bytes | None:
        assert "\n" not in path
        self.proc.stdin.write(f"{self.rev}:{path}\n".encode("utf-8"))
        self.proc.stdin.flush()
        header = self.proc.stdout.readline().split()
        if len(header) < 3 or header[1] != b"blob":
            return None
        size = int(header[2])
        data = self.proc.stdout.read(size)
        self.proc.stdout.read(1)
        return data

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


class Sources:
    def __init__(self, testkit: Path | None, mirror: Path | None):
        self.testkit = testkit
        self.mirror = mirror
        self.readers: dict[str, GitReader | None] = {}

    def read(self, pool_path: str) -> bytes | None:
        head, _, rest = pool_path.partition("/")
        if head == "testkit":
            if self.testkit is None:
                return None
            p = self.testkit / rest
            return p.read_bytes() if p.is_file() else None
        if head in GIT_SOURCES:
            if head not in self.readers:
                repo, commit = GIT_SOURCES[head]
                git_dir = find_git_dir(self.mirror, repo) if self.mirror else None
                if git_dir is None:
                    print(f"error: no mirror of {repo} under {self.mirror}", file=sys.stderr)
                self.readers[head] = GitReader(git_dir, commit) if git_dir else None
            reader = self.readers[head]
            return reader.read(rest) if reader else None
        raise SystemExit(f"unknown source in path {pool_path!r}")

    def close(self):
        for r in self.readers.values():
            if r:
                r.close()


def build_pool(rows: list[dict], sources: Sources, out: Path) -> int:
    bad = 0
    written = kept = 0
    for row in sorted(rows, key=lambda r: r["path"]):
        dest = out / row["path"]
        if dest.is_file() and sha256(dest.read_bytes()) == row["sha256"]:
            kept += 1
            continue
        data = sources.read(row["path"])
        if data is None:
            print(f"missing: {row['path']}", file=sys.stderr)
            bad += 1
            continue
        if sha256(data) != row["sha256"]:
            print(f"sha256 differs: {row['path']}", file=sys.stderr)
            bad += 1
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(dest)
        written += 1
    cols = ["file", *rows[0].keys()] if rows else ["file"]
    with open(out / "labels.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        for row in sorted(rows, key=lambda r: r["path"]):
            w.writerow({"file": row["path"], **row})
    print(f"pool: {len(rows)} rows, {written} copied, {kept} already present, {bad} bad -> {out}")
    return bad


def eval_name(row: dict) -> str:
    """A short ASCII file name for a committed evaluation copy."""
    head, _, rest = row["path"].partition("/")
    ext = Path(rest).suffix.lower()
    if head == "testkit":
        folder, _, tail = rest.partition("/")
        stem = tail.replace("/", "_") if folder == "identities" else f"{folder}_{tail.replace('/', '_')}"
        return "tk_" + stem
    if head == "Face-Mask-Detection":
        cls = rest.split("/")[1]  # dataset/<class>/<file>
        return f"fmd_{cls}_{row['sha256'][:16]}{ext}"
    raise SystemExit(f"{row['path']}: source not allowed in the committed evaluation set")


def copied_from(row: dict) -> str:
    head, _, rest = row["path"].partition("/")
    if head in GIT_SOURCES:
        repo, commit = GIT_SOURCES[head]
        return f"{repo}@{commit[:12]}:{rest}"
    return row["path"]


def write_eval(rows: list[dict], sources: Sources, testkit: Path) -> int:
    origins = {r["sha256"]: r["path"] for r in read_rows(TESTDATA / "ORIGINS.csv") if not r["path"].startswith("capture/")}
    chosen = [
        r for r in rows if r["split"] == "eval" and not r["notes"].startswith("EXCLUDE") and r["source"] in COMMITTABLE
    ]
    chosen.sort(key=lambda r: r["path"])
    EVAL_DIR.mkdir(parents=True, exist_ok=True)
    wanted = set()
    out_rows = []
    bad = 0
    for row in chosen:
        if row["sha256"] in origins:
            rel = origins[row["sha256"]]
        else:
            name = eval_name(row)
            rel = f"capture/eval/{name}"
            wanted.add(name)
            dest = EVAL_DIR / name
            if not (dest.is_file() and sha256(dest.read_bytes()) == row["sha256"]):
                data = sources.read(row["path"])
                if data is None or sha256(data) != row["sha256"]:
                    print(f"missing or different: {row['path']}", file=sys.stderr)
                    bad += 1
                    continue
                dest.write_bytes(data)
        out_rows.append(
            {
                "file": rel,
                **{c: row[c] for c in LABEL_COLS},
                "source": row["source"],
                "licence": row["licence"],
                "copied_from": copied_from(row),
                "sha256": row["sha256"],
                "notes": row["notes"],
            }
        )
    for stale in EVAL_DIR.iterdir():
        if stale.name not in wanted:
            stale.unlink()
    with open(EVAL_CSV, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=EVAL_COLS, lineterminator="\n")
        w.writeheader()
        w.writerows(out_rows)
    write_origins(chosen, out_rows, testkit)
    print(f"eval: {len(out_rows)} rows ({len(wanted)} files in {EVAL_DIR.relative_to(ROOT)}), {bad} bad")
    return bad


def write_origins(chosen: list[dict], out_rows: list[dict], testkit: Path) -> None:
    """Replace the capture/eval rows of testdata/ORIGINS.csv (same columns and conventions as the rest)."""
    manifest = {r["path"]: r for r in read_rows(testkit / "MANIFEST.csv")}
    path = TESTDATA / "ORIGINS.csv"
    text = path.read_bytes().decode("utf-8")
    lines = text.splitlines(keepends=True)  # other rows are kept byte for byte, line endings included
    eol = "\r\n" if lines[0].endswith("\r\n") else "\n"
    kept = [l for l in lines if not l.startswith("capture/eval/")]
    if kept and not kept[-1].endswith("\n"):
        kept[-1] += eol
    new = []
    for row, ev in zip(chosen, out_rows):
        if not ev["file"].startswith("capture/eval/"):
            continue  # already listed under its own testdata path
        head, _, rest = row["path"].partition("/")
        if head == "testkit":
            m = manifest[rest]
            source, origin, faces = m["copied_from"].split("/")[0], m["copied_from"], m["expected_faces"]
        else:
            source, origin = head, row["path"]
            faces = "2" if re.search(r"\btwo\b", row["notes"]) else "1"
        size = (TESTDATA / ev["file"]).stat().st_size
        fields = [ev["file"], row["sha256"], str(size), "capture", row.get("identity", ""), faces, source, row["licence"], origin]
        if any("," in x or '"' in x for x in fields):
            raise SystemExit(f"ORIGINS.csv is read with a plain split on commas: {fields}")
        new.append(",".join(fields))
    path.write_bytes(("".join(kept) + "".join(l + eol for l in sorted(new))).encode("utf-8"))
    print(f"ORIGINS.csv: {len(new)} capture/eval rows")


def verify_eval() -> int:
    bad = 0
    rows = read_rows(EVAL_CSV)
    for row in rows:
        p = TESTDATA / row["file"]
        if not p.is_file() or sha256(p.read_bytes()) != row["sha256"]:
            print(f"missing or different: {row['file']}", file=sys.stderr)
            bad += 1
    print(f"eval.csv: {len(rows)} rows, {bad} bad")
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--testkit", type=Path, help="the shared testkit folder (../shared/testkit)")
    ap.add_argument("--mirror", type=Path, help="folder holding the mirrored git repositories")
    ap.add_argument("--labels", type=Path, default=LABELS)
    ap.add_argument("--out", type=Path, default=ROOT / ".cache" / "capture")
    ap.add_argument("--write-eval", action="store_true", help="also rewrite testdata/capture/eval/ and eval.csv")
    ap.add_argument("--verify-eval", action="store_true", help="only check the committed evaluation files")
    args = ap.parse_args()
    if args.verify_eval:
        return 1 if verify_eval() else 0
    if args.testkit is None or args.mirror is None:
        ap.error("--testkit and --mirror are required to build the pool")
    rows = read_rows(args.labels)
    sources = Sources(args.testkit.resolve(), args.mirror.resolve())
    try:
        bad = build_pool(rows, sources, args.out)
        if args.write_eval:
            bad += write_eval(rows, sources, args.testkit.resolve())
    finally:
        sources.close()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

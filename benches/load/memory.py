#!/usr/bin/env python3
"""Peak memory of wajah-server under the hardening review's bad inputs and a flood.

Starts the release server (2 workers) on loopback, then, phase by phase: 40 uploads of 14.5 MB that
stall before their end; ten 14.6 MB JSON bodies of 7.3 million array elements; ten 7000x7000 RGBA16
PNGs (381 KB each); a 20 s flood of verifications at concurrency 64. Prints the server's peak RSS
(VmHWM) after each phase. Bounded: loopback only, fixed counts and durations.

Usage: python3 benches/load/memory.py [PORT]   (after `make setup` and a release build)
"""

import base64
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 18282
KEY = "memory-probe-key-" + os.urandom(6).hex()
NIK = "3201011505900001"


def peak_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def request(method, path, body=b"", content_type="application/json", timeout=60):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=timeout)
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    try:
        s.sendall(head.encode() + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        return 0
    finally:
        s.close()
    try:
        return int(data.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def stalled_upload(size, sent, hold):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=hold + 30)
    head = (
        f"POST /v1/detections HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    )
    try:
        s.sendall(head.encode() + b'{"photo": "' + b"A" * (sent - 12))
        s.recv(4096)  # the server's answer (503 or 408) or the close
    except OSError:
        pass
    finally:
        s.close()


def png_rgba16(width, height):
    raw = zlib.compress(b"".join(b"\x00" + b"\x00" * (width * 8) for _ in range(height)), 9)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def parallel(n, fn):
    threads = [threading.Thread(target=fn) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main():
    data = tempfile.mkdtemp()
    server = subprocess.Popen(
        [f"{ROOT}/target/release/wajah-server", "--listen", f"127.0.0.1:{PORT}", "--data-dir", data,
         "--api-key-sha256", hashlib.sha256(KEY.encode()).hexdigest(), "--workers", "2",
         "--body-timeout-secs", "5", "--rate-per-key", "1000000", "--burst-per-key", "1000000"],
        cwd=ROOT, env={**os.environ, "WAJAH_LOG": "error"},
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        photo = open(f"{ROOT}/testdata/identities/fr_obama/obama.jpg", "rb").read()
        selfie = open(f"{ROOT}/testdata/identities/fr_obama/obama2.jpg", "rb").read()
        enrol = json.dumps({"nik": NIK, "photo": base64.b64encode(photo).decode()}).encode()
        assert request("POST", "/v1/enrollments", enrol) == 201
        print(f"started: peak RSS {peak_mib(server.pid):.0f} MiB")

        parallel(40, lambda: stalled_upload(int(14.5e6), int(14.0e6), 5))
        print(f"40 stalled 14.5 MB uploads: peak RSS {peak_mib(server.pid):.0f} MiB")

        zeros = b'{"photo": [' + b",".join([b"0"] * 7_300_000) + b"]}"
        codes = []
        parallel(10, lambda: codes.append(request("POST", "/v1/detections", zeros)))
        print(f"ten {len(zeros) / 1e6:.1f} MB JSON arrays ({sorted(set(codes))}): peak RSS {peak_mib(server.pid):.0f} MiB")

        png = png_rgba16(7000, 7000)
        body = json.dumps({"photo": base64.b64encode(png).decode()}).encode()
        codes = []
        parallel(10, lambda: codes.append(request("POST", "/v1/detections", body)))
        print(f"ten {len(png) // 1024} KB RGBA16 7000x7000 PNGs ({sorted(set(codes))}): peak RSS {peak_mib(server.pid):.0f} MiB")

        verify = json.dumps({"nik": NIK, "selfie": base64.b64encode(selfie).decode()}).encode()
        end = time.time() + 20
        counts = {}

        def flood():
            while time.time() < end:
                code = request("POST", "/v1/verifications", verify, timeout=30)
                counts[code] = counts.get(code, 0) + 1

        parallel(64, flood)
        print(f"20 s flood at c=64 ({dict(sorted(counts.items()))}): peak RSS {peak_mib(server.pid):.0f} MiB")
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()

"""A moto S3 server in its own process for workload g (``moto_server`` of the runner's venv).

The server runs in a separate process so that its own Python work does not share a GIL with
the benchmark runner; every implementation talks to the same server over 127.0.0.1. Between
two runs :meth:`MotoServer.reset` drops everything moto holds (it keeps objects in memory)
and recreates the bucket.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "workloads"))
from benchlib import S3_DEFAULTS  # noqa: E402

sys.path.pop(0)

HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class MotoServer:
    def __init__(self) -> None:
        exe = Path(sys.executable).parent / "moto_server"
        if not exe.exists():
            raise RuntimeError(f"{exe} not found: install moto[server] into the runner's venv")
        self._log = tempfile.NamedTemporaryFile(prefix="moto-bench-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc: subprocess.Popen[bytes] | None = None
        for _ in range(3):
            port = _free_port()
            self.url = f"http://{HOST}:{port}"
            self.proc = subprocess.Popen(
                [str(exe), "-H", HOST, "-p", str(port)],
                stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
            if self._wait_ready(30):
                break
            self._kill()
        else:
            raise RuntimeError(f"moto_server did not start; see {self._log.name}")
        self._create_bucket()

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2):
                    return True
            except OSError:
                time.sleep(0.1)
        return False

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=S3_DEFAULTS["region"],
            aws_access_key_id=S3_DEFAULTS["access_key_id"],
            aws_secret_access_key=S3_DEFAULTS["secret_access_key"],
        )

    def _create_bucket(self) -> None:
        self.client().create_bucket(Bucket=S3_DEFAULTS["bucket"])

    def reset(self) -> None:
        """Forget every object (moto keeps them in memory) and recreate the bucket."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=60):
            pass
        self._create_bucket()

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        self._kill()
        self._log.close()
        try:
            os.unlink(self._log.name)
        except OSError:
            pass

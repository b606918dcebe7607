"""One real `onepass serve` (bentoml serve, in a subprocess on a free loopback port) for the module's tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import onepass

MAX_UPLOAD_MB = 2  # small, so the over-limit test sends little
STARTUP_SECONDS = 240  # the worker imports torch and warms the model up; slow on a busy 2-core machine


@dataclass(frozen=True)
class Server:
    url: str
    log: Path

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[Server]:
    """`onepass serve default` (the shipped model), ready (model loaded and warmed up)."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    command = [sys.executable, "-m", "onepass", "serve", "default", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--max-upload-mb", str(MAX_UPLOAD_MB)]
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true"}
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_SECONDS
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server was not ready after {STARTUP_SECONDS} s:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        yield Server(url, log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # its own session: bentoml's worker processes go too
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def predictor():
    return onepass.load()


@pytest.fixture(scope="module")
def client(server):
    with server.client() as client:
        yield client

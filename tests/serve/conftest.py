"""One real `onepass serve` (bentoml serve, in a subprocess on a free loopback port) for the module's
tests, and the helpers of the tests that start their own server processes."""

from __future__ import annotations

import contextlib
import os
import resource
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
FAIL_FAST_SECONDS = 30  # the goal: a server that cannot start says so within this (CPU time: see run_timed)
WALL_SECONDS = 180  # how long such a test waits at most on a busy machine; a restart loop never exits


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


def run_timed(command: list[str]) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run `command` to its end -> the result, its wall time and its CPU time (with its children's).

    The goal (FAIL_FAST_SECONDS) is asserted on CPU time: on this project's shared 2-core machine
    the wall time of the same work varies fivefold with the other jobs running. A server that
    restarts its workers forever never exits, so it fails by the WALL_SECONDS timeout instead."""
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=WALL_SECONDS)
    except subprocess.TimeoutExpired:
        stop_session(process)
        pytest.fail(f"{' '.join(command[:6])} ... still running after {WALL_SECONDS} s")
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr), wall, cpu


@contextlib.contextmanager
def running_server(log: Path, *options: str) -> Iterator[tuple[Server, subprocess.Popen]]:
    """`onepass serve OPTIONS` on a free loopback port, once ready (model loaded and warmed up).

    The server runs in its own session; on the way out whatever is left of it (BentoML's worker
    processes included) gets SIGTERM, then SIGKILL after 30 s."""
    port = free_port()
    command = [sys.executable, "-m", "onepass", "serve", *options, "--host", "127.0.0.1", "--port", str(port)]
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
        yield Server(url, log), process
    finally:
        stop_session(process)


def stop_session(process: subprocess.Popen) -> None:
    """SIGTERM to the server's whole session (its workers too), SIGKILL if it is not gone in 30 s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:  # already gone, workers and all
        process.wait()
        return
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[Server]:
    """`onepass serve default` (the shipped model), ready, shared by the module's tests."""
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with running_server(log, "default", "--max-upload-mb", str(MAX_UPLOAD_MB)) as (server, _):
        yield server


@pytest.fixture(scope="module")
def predictor(server):
    """The in-process reference: the shipped model on the backend the server chose (GET /info), so that
    both take the same path (a backend with the frame-size graph resizes in it, the others in Python)."""
    with server.client() as client:
        backend = client.get("/info").json()["backend"]
    return onepass.load(backend=backend["name"], device=backend["device"], precision=backend["precision"])


@pytest.fixture(scope="module")
def client(server):
    with server.client() as client:
        yield client

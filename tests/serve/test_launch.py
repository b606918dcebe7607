"""The server's life with real processes: a worker that cannot start stops the whole server (it is
not restarted), and SIGTERM lets the requests in flight finish, refuses new ones and exits."""

from __future__ import annotations

import re
import signal
import socket
import sys
import threading
import time
from concurrent.futures import Future

import httpx
import orjson
import pytest

import onepass
from onepass.errors import ConfigError
from onepass.serve.cli import SERVICE
from tests.serve.conftest import FAIL_FAST_SECONDS, free_port, run_timed, running_server
from tests.serve.samples import encode, scene

IN_FLIGHT = 16
STOP_SECONDS = 10  # SIGTERM to exit, with IN_FLIGHT requests to finish (1.5 s measured on a quiet machine)


@pytest.mark.slow
def test_a_worker_that_cannot_start_stops_the_server_instead_of_being_restarted():
    """launch.py without `onepass serve`'s own check: the worker is the first to try the model."""
    try:
        onepass.load(precision="int9")
    except ConfigError as error:
        expected = str(error)
    else:
        pytest.skip("this machine can load the model at int9")
    command = [sys.executable, "-m", "onepass.serve.launch", "serve", SERVICE, "--host", "127.0.0.1"]
    done, wall, cpu = run_timed([*command, "--port", str(free_port()), "--arg", "precision=int9"])
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.splitlines()[-1] == f"onepass serve: error: {expected}", done.stderr[-3000:]
    log = done.stdout + done.stderr  # BentoML logs to stdout
    assert log.count("a worker could not start") == 1, log[-3000:]  # started once, not restarted
    assert "Traceback" not in log  # a model that does not load is a user error: one line, no stack
    assert cpu < FAIL_FAST_SECONDS, f"{cpu:.1f} s of CPU ({wall:.1f} s wall) before exiting"


def held_request(port: int, body: bytes, release: threading.Event) -> Future:
    """POST /predict over a raw connection: headers and half the body now, the rest once `release`
        is set (so the request is in the server's hands, unfinished, until then) -> (status, body: JSON
    when 200)."""
    result: Future = Future()

    def send() -> None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
                head = (
                    f"POST /predict?maps=false HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                ).encode()
                connection.sendall(head + body[: len(body) // 2])
                if not release.wait(60):
                    raise TimeoutError("never released")
                connection.sendall(body[len(body) // 2 :])
                response = b""
                while chunk := connection.recv(65536):
                    response += chunk
            head, _, content = response.partition(b"\r\n\r\n")
            status = int(head.split(maxsplit=2)[1]) if head else 0  # 0: closed without an answer
            result.set_result((status, orjson.loads(content) if status == 200 else content))
        except BaseException as error:
            result.set_exception(error)

    threading.Thread(target=send, daemon=True).start()
    return result


def predict_in_progress(url: str) -> float:
    """BentoML's gauge of /predict requests being handled now (all workers)."""
    metrics = httpx.get(url + "/metrics", timeout=10).text
    values = re.findall(r'bentoml_service_request_in_progress\{[^}]*endpoint="/predict"[^}]*\} (\S+)', metrics)
    return sum(float(v) for v in values)


def refused(url: str) -> bool:
    """A new request is not served (refused, reset, left unanswered, or 503)."""
    try:
        return httpx.get(url + "/livez", timeout=1).status_code == 503
    except httpx.TransportError:
        return True


def wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {seconds} s")
        time.sleep(0.05)


@pytest.mark.slow
def test_sigterm_answers_the_requests_in_flight_refuses_new_ones_and_exits(tmp_path):
    image = encode(scene(3, 60, 80))
    with running_server(tmp_path / "server.log", "default") as (server, process):
        port = int(server.url.rsplit(":", 1)[1])
        release = threading.Event()
        try:
            in_flight = [held_request(port, image, release) for _ in range(IN_FLIGHT)]
            wait_until(lambda: predict_in_progress(server.url) == IN_FLIGHT, 60, f"{IN_FLIGHT} requests in flight")
            process.send_signal(signal.SIGTERM)  # to the server's main process only, as `kill PID` does
            stopping = time.monotonic()
            wait_until(lambda: refused(server.url), STOP_SECONDS, "refusing new requests")
        finally:
            release.set()
        answers = [request.result(timeout=60) for request in in_flight]
        process.wait(timeout=max(1.0, STOP_SECONDS - (time.monotonic() - stopping)))
        stopped = time.monotonic() - stopping
    assert [status for status, _ in answers] == [200] * IN_FLIGHT
    assert all(body["image"] == {"width": 80, "height": 60} for _, body in answers)
    assert process.returncode == 0, server.log.read_text()[-3000:]
    assert stopped < STOP_SECONDS

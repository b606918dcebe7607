"""`onepass bench serve` against a small real HTTP server on loopback (the stdlib's threading server):
request counting, error counting, latency stats, and batch sizes read from its /metrics histogram.

The real `onepass serve` (BentoML) takes tens of seconds to start on 2 cores, so it is not started
here; scripts/benchmarks.sh runs the load generator against it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from onepass.bench.serve_load import ServeSettings, batch_size_delta, parse_batch_histogram, run_serve_bench
from onepass.bench.tables import serve_table
from onepass.cli import main
from tests.bench.conftest import HAVE_MATPLOTLIB, plot_args

FAIL_EVERY = 5  # the server answers every 5th /predict with a 500
BATCH = 2  # and records each one as a batch of 2 in its histogram


class FakeServer(BaseHTTPRequestHandler):
    count = 0
    lock = threading.Lock()
    uploads: list[bytes] = []

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/readyz":
            self._reply(200, b"ok", "text/plain")
        elif self.path == "/metrics":
            n = FakeServer.count
            text = (
                "# HELP onepass_adaptive_batch_size Batch size\n"
                "# TYPE onepass_adaptive_batch_size histogram\n"
                f'onepass_adaptive_batch_size_bucket{{endpoint="/predict",le="1.0"}} 0.0\n'
                f'onepass_adaptive_batch_size_bucket{{endpoint="/predict",le="2.0"}} {n}.0\n'
                f'onepass_adaptive_batch_size_bucket{{endpoint="/predict",le="4.0"}} {n}.0\n'
                f'onepass_adaptive_batch_size_bucket{{endpoint="/predict",le="+Inf"}} {n}.0\n'
                f'onepass_adaptive_batch_size_count{{endpoint="/predict"}} {n}.0\n'
                f'onepass_adaptive_batch_size_sum{{endpoint="/predict"}} {BATCH * n}.0\n'
            )
            self._reply(200, text.encode(), "text/plain; version=0.0.4")
        else:
            self._reply(404, b"{}")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path != "/predict" or b'name="image"' not in body:
            self._reply(400, b'{"error": "no image field"}')
            return
        with FakeServer.lock:
            FakeServer.count += 1
            failing = FakeServer.count % FAIL_EVERY == 0
        self._reply(500 if failing else 200, b'{"error": "boom"}' if failing else b'{"ok": true}')


@pytest.fixture
def server():
    FakeServer.count = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_levels_count_requests_errors_and_batch_sizes(server, tmp_path, capsys):
    argv = ["bench", "serve", "--url", server, "--concurrency", "1,4", "--requests", "20", "--warmup", "0"]
    argv += ["--json", str(tmp_path / "s.json"), *plot_args(tmp_path / "plots")]
    assert main(argv) == 0
    document = json.loads((tmp_path / "s.json").read_text())
    assert (document["kind"], document["url"]) == ("serve", server)
    assert [level["concurrency"] for level in document["levels"]] == [1, 4]
    for level in document["levels"]:
        assert level["requests"] == 20 and level["ok"] == 16 and level["errors"] == {"500": 4}
        assert level["latency_ms"]["n"] == 16 and level["latency_ms"]["p50"] > 0
        assert level["requests_per_s"] == pytest.approx(16 / level["elapsed_s"])
        assert level["batch_sizes"]["batches"] == 20 and level["batch_sizes"]["mean"] == pytest.approx(BATCH)
        assert level["batch_sizes"]["max_at_most"] == "2"
    out = capsys.readouterr().out
    assert "500: 4" in out and "mean 2.00" in out
    assert (tmp_path / "plots" / "s-load.png").is_file() or not HAVE_MATPLOTLIB


def test_in_process_reference_and_duration_mode(server, tiny_package):
    settings = ServeSettings(
        url=server, concurrency=(2,), duration=0.5, warmup=2, source_size=(48, 64), model=str(tiny_package),
        backend="torch", in_process_seconds=0.1,
    )  # fmt: skip
    document = run_serve_bench(settings, lambda message: None)
    (level,) = document["levels"]
    assert level["requests"] > 0 and level["elapsed_s"] >= 0.5
    assert [b["batch"] for b in document["in_process"]["batches"]] == [1, 8]
    assert "torch" in document["in_process"]["backend_choice"]
    assert "In-process" in serve_table(document).note


def test_unreachable_server_is_a_one_line_error(capsys):
    assert main(["bench", "serve", "--url", "http://127.0.0.1:9", "--requests", "1"]) == 2
    assert "cannot reach the server" in capsys.readouterr().err


def test_histogram_delta_without_metrics():
    assert parse_batch_histogram("# nothing here\n") is None
    assert batch_size_delta(None, None) is None

"""`onepass bench serve` against a small real HTTP server on loopback (the stdlib's threading server):
request counting, error counting, latency stats, the maps field, and batch sizes read from its
/metrics histogram; and the baseline server, started by the bench on a free port, loaded the same way.

The real `onepass serve` (BentoML) takes tens of seconds to start on 2 cores, so it is not started
here (the baseline server goes through the same start-and-stop code); scripts/benchmarks.sh runs
`onepass bench serve --model default --baseline`."""

from __future__ import annotations

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from onepass.bench.document import read_document
from onepass.bench.plan import BenchError
from onepass.bench.records import ServeLoadSettings
from onepass.bench.serve_load import (
    APP,
    BASELINE,
    ONEPASS,
    app_command,
    baseline_command,
    batch_size_delta,
    free_port,
    onepass_serve_command,
    parse_batch_histogram,
    request_payload,
    run_serve_bench,
    started_server,
)
from onepass.bench.serve_tables import serve_tables
from onepass.cli import main
from onepass.models.package import open_package
from tests.bench.conftest import HAVE_MATPLOTLIB, plot_args

FAIL_EVERY = 5  # the server answers every 5th /predict with a 500
BATCH = 2  # and records each one as a batch of 2 in its histogram


class FakeServer(BaseHTTPRequestHandler):
    count = 0
    lock = threading.Lock()
    maps_fields: list[str] = []

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
            field = body.split(b'name="maps"', 1)[1].split(b"\r\n\r\n", 1)[1].split(b"\r\n", 1)[0]
            FakeServer.maps_fields.append(field.decode())
        self._reply(500 if failing else 200, b'{"error": "boom"}' if failing else b'{"ok": true}')


@pytest.fixture
def server():
    FakeServer.count = 0
    FakeServer.maps_fields = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_levels_count_requests_errors_and_batch_sizes(server, tmp_path, capsys):
    argv = ["bench", "serve", "--url", server, "--concurrency", "1,4", "--requests", "20", "--warmup", "0"]
    argv += ["--maps", "true,false", "--json", str(tmp_path / "s.json"), *plot_args(tmp_path / "plots")]
    assert main(argv) == 0
    document = read_document(tmp_path / "s.json")
    (run,) = document.servers
    assert (document.kind, run.name, run.url, run.started) == ("serve", ONEPASS, server, False)
    assert [(level.concurrency, level.maps) for level in run.levels] == [(1, True), (1, False), (4, True), (4, False)]
    assert FakeServer.maps_fields == (["true"] * 20 + ["false"] * 20) * 2
    for level in run.levels:
        assert level.requests == 20 and level.ok == 16 and level.errors == {"500": 4}
        assert level.latency_ms.n == 16 and level.latency_ms.p50 > 0
        assert level.requests_per_s == pytest.approx(16 / level.elapsed_s)
        assert level.batch_sizes.batches == 20 and level.batch_sizes.mean == pytest.approx(BATCH)
        assert level.batch_sizes.max_at_most == "2"
    assert document.in_process is None and document.vs_baseline == ()
    out = capsys.readouterr().out
    assert "500: 4" in out and "mean 2.00" in out
    assert (tmp_path / "plots" / "s-load.png").is_file() or not HAVE_MATPLOTLIB


def test_in_process_reference_and_duration_mode(server, tiny_package):
    settings = ServeLoadSettings(
        url=server, concurrency=(2,), duration=0.5, warmup=2, source_size=(48, 64), model=str(tiny_package),
        backend="torch", in_process_batches=(1, 2), in_process_seconds=0.1,
    )  # fmt: skip
    document = run_serve_bench(settings, log=lambda message: None)
    ((level,),) = [run.levels for run in document.servers]
    assert level.requests > 0 and level.elapsed_s >= 0.5
    reference = document.in_process
    assert [b.batch for b in reference.batches] == [1, 2] and "torch" in reference.backend_choice
    for b in reference.batches:
        assert set(b.phases) == {"decode", "preprocess", "model", "postprocess"}
        assert b.images_per_s == pytest.approx(b.batch / (b.latency_ms.mean / 1e3))
        assert sum(p.mean for p in b.phases.values()) <= b.latency_ms.mean  # the phases are parts of the call
    (load, in_process) = serve_tables(document)
    batch_one = reference.batches[0].latency_ms.p50
    assert load.rows[0].added_p50_ms == pytest.approx(level.latency_ms.p50 - batch_one)
    assert load.rows[0].of_in_process_best == pytest.approx(level.requests_per_s / reference.best().images_per_s)
    assert in_process.title.startswith("in process")


@pytest.fixture(scope="module")
def exported_package(tiny_package, tmp_path_factory):
    """A copy of the tiny package with its fp32 ONNX export (what the baseline serves)."""
    from onepass.export.onnx import export_onnx

    path = tmp_path_factory.mktemp("baseline") / "tiny"
    shutil.copytree(tiny_package, path)
    export_onnx(open_package(path))
    return path


def test_baseline_server_answers_the_small_outputs(exported_package):
    package = open_package(exported_package)
    small = {s.name for t in package.config.tasks for s in t.output_specs() if "H" not in s.shape}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with started_server(baseline_command(ServeLoadSettings(model=str(exported_package)), port), url, BASELINE, print):
        frame = request_payload(ServeLoadSettings(source_size=(48, 64), upload="jpeg"))
        assert frame.content[:2] == b"\xff\xd8"  # a JPEG
        response = httpx.post(f"{url}/predict", files={"image": (frame.name, frame.content, frame.content_type)})
        assert response.status_code == 200
        body = response.json()
        assert set(body) == small and small  # the image-level outputs (attribute groups); no per-pixel map
        assert all(sum(v) == pytest.approx(1.0, abs=1e-4) for v in body.values())  # probabilities
        bad = httpx.post(f"{url}/predict", files={"image": ("x.png", b"\x89PNG not really")})
        assert bad.status_code == 400 and "not an image" in bad.json()["error"]
        assert httpx.post(f"{url}/predict", data={"x": "1"}).status_code == 400
    with pytest.raises(httpx.HTTPError):  # stopped when the block ends
        httpx.get(f"{url}/readyz", timeout=2)


def test_baseline_is_loaded_the_same_way_and_compared(server, exported_package, tmp_path):
    argv = ["bench", "serve", "--url", server, "--model", str(exported_package), "--baseline", "--backend", "torch"]
    argv += ["--concurrency", "1,2", "--requests", "6", "--warmup", "1", "--source-size", "48x64", "--upload", "jpeg"]
    argv += ["--json", str(tmp_path / "s.json")]
    assert main(argv) == 0
    document = read_document(tmp_path / "s.json")
    ours, baseline = document.servers
    assert (ours.name, baseline.name) == (ONEPASS, BASELINE) and baseline.started and not ours.started
    assert "onepass.bench.baseline_server" in baseline.command and baseline.url != server
    assert [(lv.concurrency, lv.maps) for lv in baseline.levels] == [(lv.concurrency, lv.maps) for lv in ours.levels]
    assert all(lv.ok == lv.requests == 6 and lv.batch_sizes is None for lv in baseline.levels)  # no /metrics
    for ratio, mine, theirs in zip(document.vs_baseline, ours.levels, baseline.levels, strict=True):
        assert ratio.throughput_ratio == pytest.approx(mine.requests_per_s / theirs.requests_per_s)
        assert ratio.latency_ratio == pytest.approx(mine.latency_ms.p50 / theirs.latency_ms.p50)
    titles = [t.title for t in serve_tables(document)]
    assert titles[2] == "onepass serve against the baseline server" and len(titles) == 4


def test_baseline_needs_an_onnx_export(tiny_package, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(tiny_package, bare, ignore=shutil.ignore_patterns("*.onnx"))
    with pytest.raises(BenchError, match="model.onnx is missing.*onepass export"):
        run_serve_bench(ServeLoadSettings(url="http://127.0.0.1:9", model=str(bare), baseline=True))


def test_the_servers_it_starts_load_the_model_as_the_reference_does():
    """--backend, --precision and --compile reach `onepass serve` and the app without BentoML alike."""
    settings = ServeLoadSettings(model="default", backend="torch", precision="bf16", compile=True, workers=2)
    expected = ["--backend", "torch", "--precision", "bf16", "--compile"]
    serve = onepass_serve_command(settings, 3000)
    assert serve[serve.index("--backend") :] == [*expected, "--workers", "2"]
    app = app_command(settings, 3000)
    assert app[app.index("--backend") :] == expected
    plain = onepass_serve_command(ServeLoadSettings(model="default"), 3000)
    assert "--compile" not in plain and plain[plain.index("--precision") + 1] == "fp32"


def test_unreachable_server_is_a_one_line_error(capsys):
    assert main(["bench", "serve", "--url", "http://127.0.0.1:9", "--requests", "1"]) == 2
    assert "cannot reach the server" in capsys.readouterr().err


def test_histogram_delta_without_metrics():
    assert parse_batch_histogram("# nothing here\n") is None
    assert batch_size_delta(None, None) is None


def test_without_bentoml_loads_onepass_own_app_under_uvicorn_and_compares_all_three(server, exported_package, tmp_path):
    argv = ["bench", "serve", "--url", server, "--model", str(exported_package), "--baseline", "--without-bentoml"]
    argv += ["--backend", "torch", "--concurrency", "1", "--requests", "4", "--warmup", "1", "--source-size", "48x64"]
    argv += ["--upload", "jpeg", "--json", str(tmp_path / "s.json")]
    assert main(argv) == 0
    document = read_document(tmp_path / "s.json")
    ours, app, baseline = document.servers
    assert (ours.name, app.name, baseline.name) == (ONEPASS, APP, BASELINE)
    assert "onepass.bench.app_server" in app.command and app.started
    assert all(lv.ok == lv.requests == 4 for lv in app.levels)  # onepass's own /predict answered every request
    (serve_vs_app,), (app_vs_base,) = document.vs_app, document.app_vs_baseline
    assert serve_vs_app.latency_ratio == pytest.approx(ours.levels[0].latency_ms.p50 / app.levels[0].latency_ms.p50)
    assert app_vs_base.latency_ratio == pytest.approx(app.levels[0].latency_ms.p50 / baseline.levels[0].latency_ms.p50)
    titles = [t.title for t in serve_tables(document)]
    assert titles[3:6] == [
        "onepass serve against the baseline server",
        "onepass serve against its app without BentoML",
        "onepass's app without BentoML against the baseline server",
    ]


def test_the_app_without_bentoml_answers_predict_as_onepass_serve_does(exported_package):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = ServeLoadSettings(model=str(exported_package), backend="torch")
    with started_server(app_command(settings, port), url, APP, print):
        frame = request_payload(ServeLoadSettings(source_size=(48, 64), upload="png"))
        response = httpx.post(f"{url}/predict", files={"image": (frame.name, frame.content, frame.content_type)})
        assert response.status_code == 200
        body = response.json()
        assert body["model"]["name"] == open_package(exported_package).name and "timings_ms" in body
        refused = httpx.post(f"{url}/predict", data={"x": "1"})  # not multipart: onepass serve's own refusal
        assert refused.status_code == 415 and "error" in refused.json()

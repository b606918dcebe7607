"""serve/batching.py: concurrent calls share forward passes, each gets its own slice back; a failing
batch fails only its own callers; close() drains the queue. Deterministic: the fake backend runs a
pass only when the test allows it, and the latency limit reads a clock the test sets."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np
import pytest

from onepass.serve.batching import BatchingBackend, ServiceUnavailable

TIMEOUT = 10.0  # seconds; only reached when something is broken


class FakeBackend:
    """Outputs derived from each image (so a mixed-up slice shows). With `blocking`, each forward
    pass waits until the test allows it; `faults` makes chosen passes (by index) go wrong."""

    name = "fake"

    def __init__(self, blocking: bool = True):
        self.blocking = blocking
        self.batches: list[int] = []  # images per pass, in order
        self.threads: list[str] = []  # the thread each pass ran in
        self.faults: dict[int, str] = {}
        self._permits = threading.Semaphore(0)

    def allow(self, passes: int = 1) -> None:
        for _ in range(passes):
            self._permits.release()

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        index = len(self.batches)
        self.batches.append(len(images))
        self.threads.append(threading.current_thread().name)
        if self.blocking and not self._permits.acquire(timeout=TIMEOUT):
            raise TimeoutError("the test never allowed this pass")
        fault = self.faults.get(index)
        if fault == "raises":
            raise RuntimeError("the device fell over")
        outputs = {"id": images[:, 0, 0, 0].astype(np.int64), "mean": images.mean(axis=(1, 2, 3))}
        if fault == "too few rows":
            outputs["mean"] = outputs["mean"][:-1]
        elif fault == "not an array":
            outputs["mean"] = 0.5
        return outputs


def image(i: int, n: int = 1) -> np.ndarray:
    return np.full((n, 2, 2, 3), i, np.uint8)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.001)


def in_thread(function: Callable, *args) -> Future:
    """`function(*args)` in a daemon thread: a call that never returns fails its test by the timeout
    of `result(TIMEOUT)`, rather than hanging the test run."""
    future: Future = Future()

    def target() -> None:
        try:
            future.set_result(function(*args))
        except BaseException as error:
            future.set_exception(error)

    threading.Thread(target=target, daemon=True).start()
    return future


def start_blocked_pass(batching: BatchingBackend, backend: FakeBackend, i: int = 0) -> Future:
    """A lone call whose pass is running (and held): every call after it queues."""
    first = in_thread(batching.run, image(i))
    wait_until(lambda: len(backend.batches) == 1, "the first pass started")
    return first


def queue_calls(batching: BatchingBackend, images: list[np.ndarray]) -> list[Future]:
    """Queue the calls one after the other, so their order in the queue is the list's."""
    futures = []
    for n, images_ in enumerate(images, start=1):
        futures.append(in_thread(batching.run, images_))
        wait_until(lambda n=n: batching.queued == n, f"{n} call(s) queued")
    return futures


def test_a_lone_call_runs_at_once_in_its_own_thread():
    backend = FakeBackend(blocking=False)
    observed: list[int] = []
    batching = BatchingBackend(backend, max_batch_size=8, max_latency_ms=10_000, on_batch=observed.append)
    assert batching.run(image(3, 2))["id"].tolist() == [3, 3]
    assert backend.threads == [threading.current_thread().name]  # no batching window, no hand-off
    assert observed == [2]
    batching.close()


def test_queued_calls_run_as_batches_in_the_model_thread_each_caller_gets_its_slice():
    backend = FakeBackend()
    observed: list[int] = []
    batching = BatchingBackend(backend, max_batch_size=8, max_latency_ms=10_000, on_batch=observed.append)
    first = start_blocked_pass(batching, backend, 100)
    queued = queue_calls(batching, [image(i) for i in range(24)])
    backend.allow(4)
    assert first.result(TIMEOUT)["id"].tolist() == [100]
    results = [future.result(TIMEOUT) for future in queued]
    assert [r["id"].tolist() for r in results] == [[i] for i in range(24)]
    assert [r["mean"].tolist() for r in results] == [[float(i)] for i in range(24)]
    assert backend.batches == [1, 8, 8, 8] and observed == [1, 8, 8, 8]
    assert backend.threads[1:] == ["onepass-model"] * 3
    batching.close()


def test_multi_image_calls_stay_together_and_a_call_over_the_limit_runs_alone():
    backend = FakeBackend()
    batching = BatchingBackend(backend, max_batch_size=4, max_latency_ms=10_000)
    sizes = [2, 1, 10, 3, 1]
    start_blocked_pass(batching, backend)
    queued = queue_calls(batching, [image(n, n) for n in sizes])
    backend.allow(4)
    results = [future.result(TIMEOUT) for future in queued]
    for n, result in zip(sizes, results, strict=True):
        assert result["id"].tolist() == [n] * n
    assert backend.batches == [1, 2 + 1, 10, 3 + 1]
    batching.close()


class FakeFrameBackend(FakeBackend):
    """A FakeBackend with a frame-size graph: its passes are recorded with the frames' size."""

    runs_frames = True

    def __init__(self):
        super().__init__()
        self.frame_sizes: list[tuple[int, int] | None] = []  # per pass: the frames' (H, W), None for `run`

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        self.frame_sizes.append(None)
        return super().run(images)

    def run_frames(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        self.frame_sizes.append(frames.shape[1:3])
        return FakeBackend.run(self, frames)


def test_frames_share_a_pass_only_with_frames_of_their_size():
    backend = FakeFrameBackend()
    batching = BatchingBackend(backend, max_batch_size=8, max_latency_ms=10_000)
    assert batching.runs_frames and not BatchingBackend(FakeBackend(), 8, 10_000).runs_frames
    start_blocked_pass(batching, backend)
    small, large = np.full((1, 2, 2, 3), 1, np.uint8), np.full((1, 4, 6, 3), 2, np.uint8)
    calls = [(batching.run_frames, small), (batching.run_frames, small), (batching.run_frames, large),
             (batching.run, image(3)), (batching.run_frames, large)]  # fmt: skip
    queued = []
    for n, (call, images) in enumerate(calls, start=1):
        queued.append(in_thread(call, images))
        wait_until(lambda n=n: batching.queued == n, f"{n} call(s) queued")
    backend.allow(5)
    assert [future.result(TIMEOUT)["id"].tolist() for future in queued] == [[1], [1], [2], [3], [2]]
    # the queue's order is kept: a pass takes the calls at its head that can join the first
    assert backend.frame_sizes == [None, (2, 2), (4, 6), None, (4, 6)]
    assert backend.batches == [1, 2, 1, 1, 1]
    batching.close()


def test_a_call_that_waited_too_long_is_refused_not_run_late():
    now = [0.0]
    backend = FakeBackend()
    batching = BatchingBackend(backend, max_batch_size=4, max_latency_ms=100, clock=lambda: now[0])
    first = start_blocked_pass(batching, backend)
    late = queue_calls(batching, [image(1), image(2)])  # queued at t = 0
    now[0] = 0.25
    fresh = in_thread(batching.run, image(3))  # queued at t = 0.25
    wait_until(lambda: batching.queued == 3, "3 calls queued")
    backend.allow(2)
    assert first.result(TIMEOUT)["id"].tolist() == [0]
    assert fresh.result(TIMEOUT)["id"].tolist() == [3]
    for future in late:
        with pytest.raises(ServiceUnavailable, match=r"waited 0\.2 s .* over max_latency_ms=100"):
            future.result(TIMEOUT)
    assert backend.batches == [1, 1]  # the late ones never reached the model
    batching.close()


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("raises", "the device fell over"),
        ("too few rows", r"output 'mean' with shape \(2,\) for a batch of 3"),
        ("not an array", r"output 'mean' with shape \(\) for a batch of 3"),
    ],
)
def test_a_failing_batch_in_the_model_thread_fails_its_callers_only_and_the_next_batch_runs(fault, error):
    backend = FakeBackend()
    batching = BatchingBackend(backend, max_batch_size=4, max_latency_ms=10_000)
    backend.faults[1] = fault  # the first batch taken from the queue
    first = start_blocked_pass(batching, backend)
    failing = queue_calls(batching, [image(1), image(2, 2)])
    backend.allow(2)
    assert first.result(TIMEOUT)["id"].tolist() == [0]
    for future in failing:
        with pytest.raises(Exception, match=error):
            future.result(TIMEOUT)
    # the model thread is still there: the next queued batch runs in it
    lone = in_thread(batching.run, image(5))
    wait_until(lambda: len(backend.batches) == 3, "the next lone pass started")
    after = queue_calls(batching, [image(6), image(7)])
    backend.allow(2)
    assert lone.result(TIMEOUT)["id"].tolist() == [5]
    assert [future.result(TIMEOUT)["id"].tolist() for future in after] == [[6], [7]]
    assert backend.batches == [1, 3, 1, 2]
    assert backend.threads[1] == backend.threads[3] == "onepass-model"
    batching.close()


def test_a_failing_batch_size_hook_is_logged_and_the_answers_still_go_out(caplog):
    def hook(size: int) -> None:
        raise ValueError("metrics are down")

    backend = FakeBackend()
    batching = BatchingBackend(backend, max_batch_size=4, max_latency_ms=10_000, on_batch=hook)
    with caplog.at_level(logging.ERROR, logger="onepass.serve"):
        first = start_blocked_pass(batching, backend)
        queued = queue_calls(batching, [image(1), image(2)])
        backend.allow(2)
        assert first.result(TIMEOUT)["id"].tolist() == [0]
        assert [future.result(TIMEOUT)["id"].tolist() for future in queued] == [[1], [2]]
        backend.blocking = False
        assert batching.run(image(3))["id"].tolist() == [3]
    assert "batch-size hook failed" in caplog.text and "metrics are down" in caplog.text
    batching.close()


def test_a_failed_lone_pass_fails_its_caller_and_the_next_pass_still_runs():
    backend = FakeBackend(blocking=False)
    backend.faults[0] = "raises"
    batching = BatchingBackend(backend, max_batch_size=4, max_latency_ms=10_000)
    with pytest.raises(RuntimeError, match="fell over"):
        batching.run(image(1))
    assert batching.run(image(2))["id"].tolist() == [2]
    batching.close()


def test_close_runs_the_queued_calls_then_refuses_new_ones():
    backend = FakeBackend()
    batching = BatchingBackend(backend, max_batch_size=8, max_latency_ms=10_000)
    first = start_blocked_pass(batching, backend)
    queued = queue_calls(batching, [image(1), image(2), image(3)])
    closing = in_thread(batching.close)
    wait_until(lambda: batching.closed, "close() was called")
    with pytest.raises(ServiceUnavailable, match="shutting down"):
        batching.run(image(4))
    assert not closing.done() and batching.queued == 3  # close() waits for the queue
    backend.allow(2)
    closing.result(TIMEOUT)  # close() returns once the model thread has ended
    assert first.result(TIMEOUT)["id"].tolist() == [0]
    assert [future.result(TIMEOUT)["id"].tolist() for future in queued] == [[1], [2], [3]]
    assert backend.batches == [1, 3]

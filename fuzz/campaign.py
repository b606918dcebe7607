"""Runs one fuzz target under atheris (libFuzzer) and keeps going past findings.

A target is `check(data)`: it returns when the code under test kept its contract and raises
`ContractBroken` (or lets any other exception escape) when it did not. Each distinct finding
(exception type and the innermost frame of onepass code, else the innermost frame) is saved once
to fuzz/findings/<target>/ with its traceback, so one ten-minute campaign reports every crash
instead of stopping at the first. The slowest input over SLOW_CPU_SECONDS (CPU time, not wall time:
the machine is shared) is kept as slowest.bin, and the first input that grows the process past
MEMORY_MB as a finding; libFuzzer's own -timeout and -rss_limit_mb stay as the hard stops, and its
artifacts (crash-*, slow-unit-*, timeout-*) go to the findings folder too.

    python fuzz/<target>.py CORPUS_DIR [libFuzzer flags]   fuzz (CORPUS_DIR gets the seeds if empty)
    python fuzz/<target>.py --replay FILE...                run inputs once, print each outcome
    python fuzz/<target>.py --minimise FILE                 shrink a finding, keeping its signature
"""

from __future__ import annotations

import hashlib
import re
import resource
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[1]
FINDINGS = ROOT / "fuzz" / "findings"
SUMMARY_EVERY_SECONDS = 10.0
SLOW_CPU_SECONDS = 1.0
MEMORY_MB = 1500


class ContractBroken(AssertionError):
    """The code under test returned or raised something its contract does not allow."""


def signature(error: BaseException) -> str:
    """What makes two findings the same: the exception type and the innermost frame of project code
    outside fuzz/ (else the innermost frame); a broken contract by its message, digits dropped."""
    if isinstance(error, ContractBroken):
        return "ContractBroken: " + re.sub(r"\d+", "N", str(error))[:100]
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if _is_project_code(f.filename)]
    frame = (ours or frames or [None])[-1]
    kind = (
        type(error).__qualname__
        if type(error).__module__ == "builtins"
        else f"{type(error).__module__}.{type(error).__qualname__}"
    )
    return f"{kind} at {Path(frame.filename).name}:{frame.lineno}" if frame else kind


def _is_project_code(filename: str) -> bool:
    if filename.startswith("<"):  # <frozen codecs> and the like
        return False
    path = Path(filename).resolve()
    return path.is_relative_to(ROOT) and not path.is_relative_to(ROOT / "fuzz") and ".venv" not in path.parts


class Campaign:
    def __init__(self, name: str, check: Callable[[bytes], None]):
        self.name = name
        self.check = check
        self.findings = FINDINGS / name
        self.seen: set[str] = set()
        self.warnings: Counter[str] = Counter()
        self.executed = 0
        self.slowest = SLOW_CPU_SECONDS
        self.started = self.summarised = time.monotonic()

    def one_input(self, data: bytes) -> None:
        self.executed += 1
        start, cpu_start = time.monotonic(), time.process_time()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                self.check(data)
            except Exception as error:  # every escape is a finding: record it and go on fuzzing
                self._record(signature(error), data, traceback.format_exc())
        for warning in caught:
            self.warnings[f"{warning.category.__name__}: {str(warning.message)[:80]}"] += 1
        cpu = time.process_time() - cpu_start
        if cpu > self.slowest:
            self.slowest = cpu
            self.findings.mkdir(parents=True, exist_ok=True)
            (self.findings / "slowest.bin").write_bytes(data)
            (self.findings / "slowest.txt").write_text(f"{cpu:.2f} s CPU after {self.executed} inputs\n")
            print(f"\n=== slowest input so far: {cpu:.2f} s CPU -> {self.findings / 'slowest.bin'}", file=sys.stderr)
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if rss_mb > MEMORY_MB:
            self._record(f"memory ({rss_mb:.0f} MB peak)", data, f"peak RSS {rss_mb:.0f} MB\n", bucket="memory")
        if start - self.summarised > SUMMARY_EVERY_SECONDS:  # libFuzzer ends the process from C: no atexit
            self.summarised = start
            self.findings.mkdir(parents=True, exist_ok=True)
            (self.findings / "summary.txt").write_text(self.summary() + "\n")

    def _record(self, key: str, data: bytes, report: str, bucket: str | None = None) -> None:
        key = bucket or key  # memory findings: keep the first only
        if key in self.seen:
            return
        self.seen.add(key)
        self.findings.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha1(data).hexdigest()[:12]
        path = self.findings / f"{digest}.bin"
        path.write_bytes(data)
        path.with_suffix(".txt").write_text(f"{key}\n\n{report}")
        print(f"\n=== finding {len(self.seen)} after {self.executed} inputs: {key} -> {path}", file=sys.stderr)

    def summary(self) -> str:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        lines = [
            f"{self.name}: {self.executed} inputs in {time.monotonic() - self.started:.0f} s "
            f"({usage.ru_utime + usage.ru_stime:.0f} s CPU), {len(self.seen)} findings, "
            f"slowest input {self.slowest:.2f} s CPU"
            + (" (none over the threshold)" if self.slowest == SLOW_CPU_SECONDS else "")
        ]
        lines += [f"  finding: {key}" for key in sorted(self.seen)]
        lines += [f"  warning x{count}: {text}" for text, count in self.warnings.most_common(12)]
        return "\n".join(lines)


def replay(check: Callable[[bytes], None], files: list[str]) -> int:
    """Run each input once; a broken contract prints its traceback. Exit status 1 if any broke it."""
    broken = 0
    for name in files:
        cpu_start = time.process_time()
        try:
            check(Path(name).read_bytes())
            print(f"{name}: contract kept ({time.process_time() - cpu_start:.3f} s CPU)")
        except Exception:
            broken += 1
            print(f"{name}: CONTRACT BROKEN\n{traceback.format_exc()}")
    return 1 if broken else 0


def minimise(check: Callable[[bytes], None], path: Path, budget_seconds: float = 120.0) -> Path:
    """Delta debugging: drop ever smaller spans while the finding keeps its signature."""

    def outcome(data: bytes) -> str | None:
        try:
            check(data)
        except Exception as error:
            return signature(error)
        return None

    data = path.read_bytes()
    target = outcome(data)
    if target is None:
        raise SystemExit(f"{path}: keeps the contract; nothing to minimise")
    deadline = time.monotonic() + budget_seconds
    span = max(1, len(data) // 2)
    while span >= 1 and time.monotonic() < deadline:
        offset, shrunk = 0, False
        while offset < len(data) and time.monotonic() < deadline:
            candidate = data[:offset] + data[offset + span :]
            if candidate and outcome(candidate) == target:
                data, shrunk = candidate, True
            else:
                offset += span
        if not shrunk:
            span //= 2
    out = path.with_suffix(".min.bin")
    out.write_bytes(data)
    print(f"{path}: {target}; minimised {path.stat().st_size} -> {len(data)} bytes: {out}\n{data!r}")
    return out


def main(
    name: str,
    check: Callable[[bytes], None],
    seeds: Callable[[], dict[str, bytes]],
    mutator: Callable[[bytes, int, int], bytes],
) -> None:
    args = sys.argv[1:]
    if args[:1] == ["--replay"]:
        raise SystemExit(replay(check, args[1:]))
    if args[:1] == ["--minimise"]:
        for file in args[1:]:
            minimise(check, Path(file))
        return
    corpus = next((Path(a) for a in args if not a.startswith("-")), None)
    if corpus is not None and not (corpus.is_dir() and any(corpus.iterdir())):
        corpus.mkdir(parents=True, exist_ok=True)
        for seed_name, data in seeds().items():
            (corpus / f"seed-{seed_name}").write_bytes(data)
    campaign = Campaign(name, check)
    if not any(a.startswith("-artifact_prefix=") for a in args):
        campaign.findings.mkdir(parents=True, exist_ok=True)
        args.append(f"-artifact_prefix={campaign.findings}/")
    atheris.Setup([sys.argv[0], *args], campaign.one_input, custom_mutator=mutator)
    atheris.Fuzz()

"""Everything `onepass predict` writes under DIR, and how a run resumes.

    DIR/predict.json            the run's settings (model, tasks, output format, maps_at); a re-run must match them
    DIR/<task>/<stem>.png       one file per dense task per image, in the task's file encoding
    DIR/npz/<stem>.npz          --format npz: every chosen output of one image as raw arrays
    DIR/visualize/<stem>.png    --visualize: the panel (input, then each dense task)
    DIR/predictions.csv         one row per finished image: key, source, size, and each task's columns
                                (attribute labels and probabilities, audience counts)
    DIR/predictions.parquet     the same table, rewritten at the end of a run (when pyarrow is there)
    DIR/<task>.jsonl            per finished image, {"image": key, "<task>": ...} for tasks with
                                records (the people, with their boxes and attributes)
    DIR/errors.jsonl            this run's bad inputs: {"image", "source", "error"} per line

Crash safety: every file is written under DIR/.tmp/ and renamed into place (a reader never sees
half a file), and an image's table row is appended only after all its files exist, in one
`write()` on an O_APPEND descriptor. The row is the commit record: an image is done when it has a
row and all its files; a resumed run redoes the others (rewriting files is harmless) and appends
their rows once. A record line is appended just before its image's row; a resumed run first drops
the lines of images without a row (and keeps one line per image). A partial last line (a machine that lost power mid-write) is cut off on resume.

A write that fails (the disk is full, DIR was removed, no permission) raises WriteError naming the
file: the run stops, every image already complete stays so, and the same command resumes. While a
run holds DIR it holds DIR/.lock (removed when the run ends); a run refused before its first result
leaves DIR as it was.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from onepass.models.tasks import Task

from onepass.errors import UserError
from onepass.predict.inputs import InputImage, output_stem

SETTINGS_FILE = "predict.json"
SETTINGS_FORMAT = "onepass-predict"
SETTINGS_VERSION = 1
SETTINGS_DEFAULTS = {"maps_at": "frame"}  # the value of a setting that folders written before it existed hold
TABLE_FILE = "predictions.csv"
PARQUET_FILE = "predictions.parquet"
ERRORS_FILE = "errors.jsonl"
TEMP_DIR = ".tmp"
LOCK_FILE = ".lock"
PANEL_DIR = "visualize"
NPZ_DIR = "npz"
FORMATS = ("png", "npz")
BASE_COLUMNS = {"image": "string", "source": "string", "height": "int32", "width": "int32"}  # name -> Parquet type
RECORDS = "records"  # a row's {task: record} (not a column): written to DIR/<task>.jsonl


class OutputError(UserError, ValueError):
    """DIR cannot take this run: another run holds it, it was written with other settings, or one of
    its files cannot be written."""


class WriteError(OutputError):
    """A file under DIR could not be written (the disk is full, DIR was removed, no permission). The
    run stops; what is complete stays complete, and the same command resumes once the cause is fixed."""


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """An OSError while writing `path` becomes a WriteError naming it (one line, no traceback)."""
    try:
        yield
    except OSError as error:
        raise WriteError(f"{path}: cannot write ({error.strerror or error})") from None


@dataclass(frozen=True)
class OutputLayout:
    """Where each output of one image goes. `file_tasks` are the chosen tasks written as one file per
    image in their codec (the per-pixel maps); `record_tasks` those with a line per image in a JSONL."""

    root: Path
    file_tasks: tuple[str, ...]
    format: str  # "png" | "npz"
    visualize: bool
    record_tasks: tuple[str, ...] = ()

    @classmethod
    def for_tasks(cls, root: Path, tasks: Sequence[Task], format: str, visualize: bool) -> OutputLayout:
        """The layout of `tasks`' outputs: a file per image in each codec task's codec (the maps), a
        JSONL line per image for each task that writes records."""
        files = tuple(t.name for t in tasks if t.codec is not None)
        return cls(root, files, format, visualize, tuple(t.name for t in tasks if t.writes_records))

    def record_file(self, task: str) -> Path:
        return self.root / f"{task}.jsonl"

    def task_file(self, task: str, key: str) -> Path:
        return self.root / task / f"{output_stem(key)}.png"

    def npz_file(self, key: str) -> Path:
        return self.root / NPZ_DIR / f"{output_stem(key)}.npz"

    def panel_file(self, key: str) -> Path:
        return self.root / PANEL_DIR / f"{output_stem(key)}.png"

    def files(self, key: str) -> list[Path]:
        """Every file one finished image has."""
        files = [self.npz_file(key)] if self.format == "npz" else [self.task_file(t, key) for t in self.file_tasks]
        if self.visualize:
            files.append(self.panel_file(key))
        return files

    @property
    def temp_dir(self) -> Path:
        return self.root / TEMP_DIR


def write_atomic(path: Path, data: bytes, temp_dir: Path) -> None:
    """Write `data` to `path` so that `path` is either absent, its old content, or all of `data`.

    Raises WriteError (naming `path`) when the file system refuses."""
    from onepass.models.package import atomic_path  # here: the CLI parser imports this module

    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, temp_dir) as temporary:  # DIR/.tmp is on DIR's filesystem: one rename
            Path(temporary).write_bytes(data)


def table_columns(task_columns: Mapping[str, str]) -> dict[str, str]:
    """image, source, height, width, then the chosen tasks' own columns (`Task.table_columns`): name -> type."""
    return {**BASE_COLUMNS, **task_columns}


def table_row(
    image: InputImage, size: tuple[int, int], values: Mapping[str, Any], records: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    row: dict[str, Any] = {"image": image.key, "source": image.source, "height": size[0], "width": size[1], **values}
    if records:
        row[RECORDS] = dict(records)
    return row


class OutputFolder:
    """DIR for one run: holds the lock, checks the settings, knows what is done, appends rows and errors.

    Use as a context manager; only this object (in the driver process) touches the table and the
    error log, so they have a single writer. Entering only reads DIR (and takes the lock); the run's
    own files (predict.json, the table's header, a fresh errors.jsonl) are written with the first
    result, or when the run ends well. So a run refused before its first result, whatever refused
    it (an option the backend rejects, a busy or mismatched DIR), leaves DIR as it found it.
    """

    def __init__(self, layout: OutputLayout, settings: Mapping[str, Any], columns: Mapping[str, str]):
        self.layout = layout
        self.root = layout.root
        self.settings = dict(settings)
        self.column_types = dict(columns)
        self.columns = list(columns)
        self._lock: int | None = None
        self._records: dict[str, int] = {}  # task -> its JSONL, open for appending
        self._table: int | None = None
        self._errors: int | None = None
        self._started = False
        self._new_settings = False  # predict.json is to be written when the run starts
        self._table_length = 0  # bytes of whole lines in an existing table (a cut-off line is dropped)
        self._created: list[Path] = []  # folders this run created, deepest first
        self.finished: set[str] = set()  # keys with a row in the table

    def __enter__(self) -> OutputFolder:
        try:
            with writing(self.root):
                missing = [p for p in (self.root, *self.root.parents) if not p.exists()]
                self.root.mkdir(parents=True, exist_ok=True)
                self._created = missing
            self._lock = self._take_lock()
            self._check_settings()
            self.finished = self._read_table()
            with writing(self.layout.temp_dir):
                shutil.rmtree(self.layout.temp_dir, ignore_errors=True)  # leftovers of a killed run
                self.layout.temp_dir.mkdir()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        try:
            if exc_type is None:
                self._start()  # a run with nothing to do still records its (empty) errors.jsonl
        finally:
            self._release()

    def _release(self) -> None:
        for name in ("_table", "_errors"):
            descriptor = getattr(self, name)
            if descriptor is not None:
                os.close(descriptor)
                setattr(self, name, None)
        for descriptor in self._records.values():
            os.close(descriptor)
        self._records = {}
        if self._lock is None:  # DIR was never ours (another run holds it): touch nothing
            return
        shutil.rmtree(self.layout.temp_dir, ignore_errors=True)
        (self.root / LOCK_FILE).unlink(missing_ok=True)  # while still locked (see _take_lock)
        os.close(self._lock)  # releases the flock
        self._lock = None
        if not self._started:
            for folder in self._created:  # a refused run leaves no empty DIR behind
                try:
                    folder.rmdir()
                except OSError:  # not empty (files of a run that failed before its first row): kept
                    break

    def _take_lock(self) -> int:
        """flock DIR/.lock. The holder removes the file before it unlocks, so a lock taken on a file
        that is no longer DIR/.lock (opened just before its removal) is dropped and tried again."""
        path = self.root / LOCK_FILE
        while True:
            with writing(path):
                descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                raise OutputError(
                    f"{self.root}: another onepass predict is writing here; wait for it or use another --out"
                ) from None
            try:
                current = os.path.samestat(os.fstat(descriptor), os.stat(path))
            except FileNotFoundError:
                current = False
            if current:
                return descriptor
            os.close(descriptor)

    def _check_settings(self) -> None:
        path = self.root / SETTINGS_FILE
        if path.is_file():
            try:
                written = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as error:
                raise OutputError(f"{path}: unreadable ({error}); remove it or use another --out") from None
            for field in ("model", "tasks", "output_format", "maps_at"):
                before = written.get(field, SETTINGS_DEFAULTS.get(field))  # a folder from before the field
                now = self.settings.get(field, SETTINGS_DEFAULTS.get(field))
                if before != now:
                    raise OutputError(
                        f"{self.root} holds predictions made with {field} {before!r}, this run asks "
                        f"for {now!r}; use the same options to resume, or another --out"
                    )
            return
        if (self.root / TABLE_FILE).exists():
            raise OutputError(f"{self.root}: has {TABLE_FILE} but no {SETTINGS_FILE}; use another --out")
        self._new_settings = True

    def _read_table(self) -> set[str]:
        """The keys an existing table has (its whole lines: a cut-off last line is not a row)."""
        path = self.root / TABLE_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return set()
        complete = data[: data.rfind(b"\n") + 1]
        self._table_length = len(complete)
        if not complete:
            return set()
        reader = csv.reader(io.StringIO(complete.decode("utf-8"), newline=""))
        header = next(reader)
        if header != self.columns:
            raise OutputError(f"{path}: columns {header} differ from this run's {self.columns}; use another --out")
        return {row[0] for row in reader if row}

    def _start(self) -> None:
        """Write this run's own files: predict.json if new, the table (header if new, a cut-off last
        line dropped) opened for appending, and a fresh errors.jsonl."""
        if self._started:
            return
        self._started = True
        if self._new_settings:
            document = {"format": SETTINGS_FORMAT, "version": SETTINGS_VERSION, **self.settings}
            write_atomic(self.root / SETTINGS_FILE, (json.dumps(document, indent=2) + "\n").encode(), self.root)
        table, errors = self.root / TABLE_FILE, self.root / ERRORS_FILE
        with writing(table):
            self._table = os.open(table, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
            if os.fstat(self._table).st_size != self._table_length:
                os.truncate(table, self._table_length)
        if not self._table_length:
            self._write(self._table, [self.columns], table)
        self._records = {}
        for task in self.layout.record_tasks:
            self._records[task] = self._open_records(self.layout.record_file(task))
        with writing(errors):
            self._errors = os.open(errors, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o666)

    def pending(self, images: Iterable[InputImage]) -> list[InputImage]:
        """The images that are not done: no row yet, or a file missing."""
        listing: dict[Path, set[str]] = {}

        def exists(path: Path) -> bool:
            names = listing.get(path.parent)
            if names is None:
                try:
                    names = set(os.listdir(path.parent))
                except (FileNotFoundError, NotADirectoryError):
                    names = set()
                listing[path.parent] = names
            return path.name in names

        return [
            image
            for image in images
            if image.key not in self.finished or not all(exists(f) for f in self.layout.files(image.key))
        ]

    def _open_records(self, path: Path) -> int:
        """A task's JSONL, kept to one line per finished image (the last; lines of images a killed run
        did not finish are dropped), opened for appending."""
        kept: dict[str, bytes] = {}
        with writing(path):
            if path.exists():
                for line in path.read_bytes().splitlines(keepends=True):
                    try:
                        image = json.loads(line)["image"]
                    except (ValueError, KeyError, TypeError):  # a line cut off mid-write
                        continue
                    if image in self.finished and line.endswith(b"\n"):
                        kept[image] = line
                write_atomic(path, b"".join(kept.values()), self.layout.temp_dir)
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)

    def add_rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append the rows of images whose files are all written (once per image, ever), each after
        its records."""
        new = [r for r in rows if r["image"] not in self.finished]
        if new:
            self._start()
            for task, descriptor in self._records.items():
                lines = [
                    json.dumps({"image": r["image"], task: r[RECORDS][task]}, ensure_ascii=False) + "\n"
                    for r in new
                    if task in r.get(RECORDS, {})
                ]
                with writing(self.layout.record_file(task)):
                    os.write(descriptor, "".join(lines).encode("utf-8"))
            self._write(self._table, [[row.get(c, "") for c in self.columns] for row in new], self.root / TABLE_FILE)
            self.finished.update(r["image"] for r in new)

    def add_errors(self, errors: Sequence[Mapping[str, str]]) -> None:
        if errors:
            self._start()
            text = "".join(json.dumps(dict(e), ensure_ascii=False) + "\n" for e in errors)
            with writing(self.root / ERRORS_FILE):
                os.write(self._errors, text.encode("utf-8"))

    @staticmethod
    def _write(descriptor: int | None, rows: Sequence[Sequence[Any]], path: Path) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        data = buffer.getvalue().encode("utf-8")
        with writing(path):
            while data:  # one write() in practice; a regular file takes it whole
                written = os.write(descriptor, data)
                data = data[written:]

    def write_parquet(self) -> Path | None:
        """predictions.parquet from the whole table (skipped without pyarrow)."""
        try:
            import pyarrow.csv as pa_csv
            import pyarrow.parquet as pq
        except ImportError:
            return None
        from onepass.models.package import atomic_path

        self._start()
        types = self.column_types
        import pyarrow as pa

        table = pa_csv.read_csv(
            self.root / TABLE_FILE,
            convert_options=pa_csv.ConvertOptions(column_types={k: pa.type_for_alias(v) for k, v in types.items()}),
        )
        path = self.root / PARQUET_FILE
        with writing(path), atomic_path(path) as temporary:
            pq.write_table(table, temporary)
        return path

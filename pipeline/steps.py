"""What a person sees while a local run runs, and what each step cost.

LocalDagRunner runs the steps one after another in this process and says nothing of their
progress: on the contest's 88,000 photos a step can be silent for minutes. `StepWatch` prints a
line when each step starts and ends (its duration, examples/s or steps/s, peak memory), and a
progress line at least every `heartbeat_s` seconds while a step runs (images written, training
step, bytes of examples read), to stderr: the terminal, or the log when stderr is redirected.
It records each step's wall seconds and peak resident memory for summary.json and the report.

Peak memory is the step's own: Linux lets a process reset its high-water mark
(`/proc/self/clear_refs`, "5"), so each step's peak is read from VmHWM after a reset at its
start. It covers this process only (the in-memory DirectRunner and the trainer run here).
"""

from __future__ import annotations

import contextlib
import glob
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO

from imgtfx.components import counters

HEARTBEAT_S = 30.0
_GIB = 2**30
# Steps whose work is one pass over examples: their rate is examples/s, and while they run the
# bytes this process has read, against the size of the splits they read, say how far they are.
_READS_SPLITS = {"StatisticsGen": None, "Evaluator": ("eval",)}


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Resets this process's peak RSS (Linux); False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def release_free_memory() -> None:
    """Hands the heap's free pages back to the kernel (glibc's malloc_trim), so that what one
    step freed does not stay resident under the next. No-op where glibc is absent."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _bytes_read() -> int | None:
    """Bytes this process has read through read() calls so far (page cache included)."""
    try:
        with open("/proc/self/io") as f:
            for line in f:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_bytes() -> int:
    kib = _status_kib("VmRSS")
    if kib is not None:
        return kib * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def duration(seconds: float) -> str:
    """'45.2s', '3m05s', '1h02m'."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _gib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / _GIB:.2f} GiB"


@contextlib.contextmanager
def timed(name: str, out: IO[str] | None = None) -> Iterator[dict]:
    """Start and end lines for work outside the pipeline (the report), like a step's; yields
    the record ({'seconds', 'peak_rss_mib'}) that is filled in when the block ends."""
    out = out or sys.stderr
    record: dict = {}
    reset = _reset_peak()
    start = time.monotonic()
    print(f"[{time.strftime('%H:%M:%S')}] {name}: started", file=out, flush=True)
    yield record
    record["seconds"] = round(time.monotonic() - start, 1)
    peak = _status_kib("VmHWM") if reset else None
    words = [f"{name}: done in {duration(record['seconds'])}"]
    if peak is not None:
        record["peak_rss_mib"] = round(peak / 1024)
        words.append(f"peak RSS {_gib(peak * 1024)}")
    print(f"[{time.strftime('%H:%M:%S')}] {', '.join(words)}", file=out, flush=True)


@contextlib.contextmanager
def quiet_console(log_path: str, verbose: bool = False) -> Iterator[IO[str]]:
    """Yields the stream for the user's own lines (the terminal's stderr). Unless `verbose`,
    everything else this process writes to its stdout and stderr meanwhile goes to `log_path`:
    Python logging and warnings, TensorFlow's and ML Metadata's C++ logs (written straight to
    file descriptor 2, which only redirecting the descriptor catches), Keras' epoch lines and
    library tracebacks. The descriptors are restored on the way out, failure or not.
    """
    if verbose:
        yield sys.stderr
        return
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    user = os.fdopen(os.dup(saved[1]), "w", buffering=1, encoding="utf-8")
    streams = sys.stdout, sys.stderr
    with open(log_path, "a", encoding="utf-8", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        sys.stdout = sys.stderr = log  # Python's own writers too, whatever they were
        try:
            yield user
        finally:
            sys.stdout, sys.stderr = streams
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            user.close()


def _rate(per_second: float) -> str:
    """1,234 or 5.6: whole numbers where they say enough, never a rate of 0 for a slow step."""
    return f"{per_second:,.0f}" if per_second >= 10 else f"{per_second:.1f}"


class StepWatch:
    """Prints and records the steps of a LocalDagRunner run (a context manager).

    Attributes:
      steps: {node id: {'state': 'COMPLETE'|'CACHED'|'FAILED', 'seconds', 'peak_rss_mib',
        and 'examples', 'examples_per_s' or 'steps', 'steps_per_s' where they apply}},
        in the order the steps ran.
    """

    def __init__(self, out: IO[str] | None = None, heartbeat_s: float = HEARTBEAT_S):
        self._out = out or sys.stderr
        self._heartbeat_s = heartbeat_s
        self.steps: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._running: dict | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._examples: dict | None = None  # ImageExampleGen's report and split sizes

    # The one patch: LocalDagRunner calls Launcher.launch() once per step, in order.
    @contextlib.contextmanager
    def _patched_launch(self) -> Iterator[None]:
        from tfx.orchestration.portable import launcher

        original = launcher.Launcher.launch
        watch = self

        def launch(launcher_self):
            node = launcher_self._pipeline_node.node_info.id  # the constructor's pipeline_node
            if launcher_self._system_node_handler:  # resolvers: metadata queries, no work
                return original(launcher_self)
            watch._safely(watch._started, node)
            try:
                info = original(launcher_self)
            except BaseException:
                watch._safely(watch._ended, node, "FAILED", None, launcher_self)
                raise
            watch._safely(watch._ended, node, None, info, launcher_self)
            return info

        launcher.Launcher.launch = launch
        try:
            yield
        finally:
            launcher.Launcher.launch = original

    def __enter__(self) -> StepWatch:
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(self._patched_launch())
        counters.watch(True)
        self._thread = threading.Thread(target=self._beat, name="step-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        counters.watch(False)
        self._stack.close()

    @staticmethod
    def _safely(fn, *args) -> None:
        """The watch only reports: a mistake of its own never fails the run."""
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001
            from absl import logging

            logging.warning("step watch: %s: %s", type(e).__name__, e)

    def _say(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        print(f"[{stamp}] {text}", file=self._out, flush=True)

    def _started(self, node: str) -> None:
        counters.clear()
        import gc

        gc.collect()
        release_free_memory()  # what the step before freed: 250 MB less under the Evaluator
        with self._lock:
            self._running = {
                "node": node,
                "start": time.monotonic(),
                "last_line": time.monotonic(),
                "read_start": _bytes_read(),
                "peak_reset": _reset_peak(),
            }
        self._say(f"{node}: started")

    def _ended(self, node: str, state: str | None, info, launcher_self) -> None:
        with self._lock:
            running, self._running = self._running, None
        seconds = time.monotonic() - running["start"] if running else 0.0
        peak_kib = _status_kib("VmHWM") if running and running["peak_reset"] else None
        if state is None:
            state = self._state_of(info, launcher_self)
        record: dict = {"state": state, "seconds": round(seconds, 1)}
        if peak_kib is not None:
            record["peak_rss_mib"] = round(peak_kib / 1024)
        if info is not None and node == "ImageExampleGen":
            self._remember_examples(info, state, launcher_self)
        if state == "COMPLETE":
            record.update(self._rates(node, seconds))
        self.steps[node] = record
        if state == "CACHED":
            self._say(f"{node}: cached ({duration(seconds)})")
            return
        words = [
            f"{node}: {'done' if state == 'COMPLETE' else state.lower()} in {duration(seconds)}"
        ]
        if "examples" in record:
            words.append(f"{record['examples']:,} examples ({_rate(record['examples_per_s'])}/s)")
        if "steps" in record:
            words.append(f"{record['steps']:,} steps ({record['steps_per_s']:.2f}/s)")
        if peak_kib is not None:
            words.append(f"peak RSS {_gib(peak_kib * 1024)}")
        self._say(", ".join(words))

    @staticmethod
    def _state_of(info, launcher_self) -> str:
        """COMPLETE or CACHED, as ML Metadata recorded the execution."""
        if info is None:
            return "SKIPPED"
        from ml_metadata.proto import metadata_store_pb2

        try:
            with launcher_self._mlmd_connection as m:
                (execution,) = m.store.get_executions_by_id([info.execution_id])
            return metadata_store_pb2.Execution.State.Name(execution.last_known_state)
        except Exception:  # noqa: BLE001 - the state is for the record; the run goes on
            return "COMPLETE"

    def _remember_examples(self, info, state: str, launcher_self) -> None:
        """The Examples artifact's report and split sizes, for the rates of later steps. A
        cached step's output_dict holds new, unused URIs: its artifact is read from ML
        Metadata instead."""
        from imgtfx.components.examples.conversion_report import read_report
        from imgtfx.components.examples.layout import split_uri

        uri = info.output_dict["examples"][0].uri
        if state == "CACHED":
            from ml_metadata.proto import metadata_store_pb2

            with launcher_self._mlmd_connection as m:
                events = m.store.get_events_by_execution_ids([info.execution_id])
                ids = [e.artifact_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT]
                uri = next(iter(m.store.get_artifacts_by_id(ids))).uri
        report = read_report(uri)
        sizes = {}
        for split in report.splits:
            files = glob.glob(os.path.join(glob.escape(split_uri(uri, split, report.splits)), "*"))
            sizes[split] = sum(os.path.getsize(f) for f in files)
        self._examples = {"uri": uri, "splits": report.splits, "bytes": sizes}

    def _rates(self, node: str, seconds: float) -> dict:
        seconds = max(seconds, 1e-6)
        counts = counters.snapshot()
        if node == "ImageExampleGen" and self._examples:
            n = sum(self._examples["splits"].values())
            return {"examples": n, "examples_per_s": round(n / seconds, 1)}
        if node in _READS_SPLITS and self._examples:
            splits = _READS_SPLITS[node] or tuple(self._examples["splits"])
            n = sum(self._examples["splits"].get(s, 0) for s in splits)
            return {"examples": n, "examples_per_s": round(n / seconds, 1)}
        if "train_steps" in counts:
            n = counts["train_steps"]["value"]
            return {"steps": n, "steps_per_s": round(n / seconds, 2)}
        return {}

    def _beat(self) -> None:
        while not self._stop.wait(min(1.0, self._heartbeat_s / 4)):
            with self._lock:
                running = dict(self._running) if self._running else None
                if running and time.monotonic() - running["last_line"] >= self._heartbeat_s:
                    self._running["last_line"] = time.monotonic()
                else:
                    running = None
            if running:
                self._say(self._progress_line(running))

    def _progress_line(self, running: dict) -> str:
        node = running["node"]
        elapsed = time.monotonic() - running["start"]
        words = [f"{node}: {duration(elapsed)}"]
        counts = counters.snapshot()
        if "images" in counts:
            n, since = counts["images"]["value"], counts["images"]["since"]
            rate = n / max(time.monotonic() - since, 1e-6)
            words.append(f"{n:,} images checked ({_rate(rate)}/s)")
        if "written" in counts:
            words.append(f"{counts['written']['value']:,} written")
        if "indexed" in counts:  # after training: the neighbour index (trainer/retrieval.py)
            n, since = counts["indexed"]["value"], counts["indexed"]["since"]
            rate = n / max(time.monotonic() - since, 1e-6)
            words.append(f"{n:,} train photos indexed ({_rate(rate)}/s)")
        elif "train_steps" in counts:
            c = counts["train_steps"]
            rate = c["value"] / max(time.monotonic() - c["since"], 1e-6)
            total = f"/{c['total']:,}" if c["total"] else ""
            words.append(f"step {c['value']:,}{total} ({rate:.2f} steps/s)")
        read_now = _bytes_read()
        if node in _READS_SPLITS and self._examples and read_now and running["read_start"]:
            splits = _READS_SPLITS[node] or tuple(self._examples["bytes"])
            total = sum(self._examples["bytes"].get(s, 0) for s in splits)
            done = read_now - running["read_start"]
            if total:
                share = min(done / total, 1.0)
                words.append(
                    f"{min(done, total) / 1e9:.2f} of {total / 1e9:.2f} GB of examples read "
                    f"({share:.0%})"
                )
        words.append(f"RSS {_gib(rss_bytes())}")
        return ", ".join(words)

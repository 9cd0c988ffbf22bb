"""Capture, inference and output in three threads, joined by bounded hand-overs.

    capture thread:   source.read → the model's preprocessing → NewestSlot (live: newest wins)
    inference thread: NewestSlot → runner.infer → output check → stats → output queue (bounded, blocking)
    output thread:    output queue → decode (class map, top-k) → sinks (window, video, predictions file)

Preprocessing runs in the capture thread and decoding in the output thread, so both overlap with the
model instead of adding to it: the inference thread does nothing but run the model. Every result is
decoded, also with no sink attached, so a benchmark measures the work a real run does.
A source that fails is reopened `retries` times, `retry_delay_s` apart, before the run ends with
"device lost"; the end of a recording, a frame limit or `stop()` (SIGINT) end it cleanly.
"""
from __future__ import annotations

import queue
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

from mke.runtime.errors import MkeError
from mke.runtime.live.frame import Status
from mke.runtime.live.inputs import InputBuilder
from mke.runtime.live.predictions import check_outputs, decode
from mke.runtime.live.slot import NewestSlot
from mke.runtime.live.stats import RunStats

EXIT_CODES = {"end of stream": 0, "frame limit": 0, "interrupted": 0, "window closed": 0, "device lost": 3,
              "model failing": 4}
MAX_CONSECUTIVE_MODEL_ERRORS = 10


@dataclass
class PipelineOptions:
    max_frames: int | None = None      # stop after this many results
    stats_every_s: float = 5.0         # a stats line this often (0: never)
    retries: int = 3
    retry_delay_s: float = 1.0
    read_timeout_s: float = 1.0
    output_queue: int = 4
    memory_baseline_after: int = 50    # frames before the memory baseline is taken


@dataclass
class Timing:
    latency_ms: float
    model_ms: float
    preprocess_ms: float


class StopRequested(Exception):
    """Raised by a sink when the user asks to stop (window closed, q pressed)."""


class LivePipeline:
    def __init__(self, source, runner, sinks: list | None = None, options: PipelineOptions | None = None,
                 log: Callable[[str], None] | None = None):
        self.source, self.runner, self.sinks = source, runner, list(sinks or [])
        self.options = options or PipelineOptions()
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.builder = InputBuilder(runner.spec)
        self.stats = RunStats(self.options.memory_baseline_after)
        self.reason: str | None = None
        self._stop = threading.Event()
        self._capture_done = threading.Event()
        self._slot = NewestSlot()
        self._out: queue.Queue = queue.Queue(maxsize=self.options.output_queue)
        self._failure: BaseException | None = None

    def stop(self, reason: str = "interrupted") -> None:
        if self.reason is None:
            self.reason = reason
        self._stop.set()

    # ---------------------------------------------------------------------------------- threads
    def _guard(self, body: Callable[[], None]) -> Callable[[], None]:
        def run():
            try:
                body()
            except BaseException as exc:  # a bug: kept for the main thread to re-raise after clean-up
                self._failure = exc
                self.stop("crashed")
        return run

    def _capture(self) -> None:
        opts, source, stats = self.options, self.source, self.stats
        retries_left = opts.retries
        try:
            while not self._stop.is_set():
                status, frame = source.read(opts.read_timeout_s)
                if status is Status.OK:
                    retries_left = opts.retries
                    stats.count("captured")
                    start = time.perf_counter()
                    try:
                        feeds = self.builder(frame)
                    except MkeError as exc:
                        stats.error(f"frame {frame.index}: {exc}")
                        continue
                    prep_ms = (time.perf_counter() - start) * 1e3
                    stats.preprocessed(prep_ms)
                    item = (frame, feeds, prep_ms)
                    if source.live:
                        if self._slot.put_newest(item):
                            stats.count("dropped_stale")
                    elif not self._slot.put_wait(item, self._stop):
                        break
                elif status is Status.TIMEOUT:
                    stats.count("timeouts")
                elif status is Status.DROPPED:
                    stats.count("dropped_source")
                elif status is Status.END:
                    if self.reason is None:
                        self.reason = "end of stream"
                    break
                else:
                    if retries_left == 0:
                        self.log(f"mke-live: {source.name} is lost: gave up after {opts.retries} retries")
                        self.stop("device lost")
                        break
                    retries_left -= 1
                    stats.count("retries")
                    self.log(f"mke-live: {source.name} failed; reopening it "
                             f"(retry {opts.retries - retries_left} of {opts.retries})")
                    if self._stop.wait(opts.retry_delay_s):
                        break
                    try:
                        source.reopen()
                    except MkeError as exc:
                        self.log(f"mke-live: reopening failed: {exc}")
        finally:
            self._capture_done.set()

    def _infer(self) -> None:
        opts, stats, spec = self.options, self.stats, self.runner.spec
        failing = 0
        while True:
            item = self._slot.get(0.05)
            if item is None:
                if self._capture_done.is_set() or self._stop.is_set():
                    break
                continue
            frame, feeds, prep_ms = item
            start = time.perf_counter()
            try:
                outputs = self.runner.infer(feeds)
                check_outputs(outputs, spec)  # a mismatch with the spec is the model failing, here
            except MkeError as exc:
                stats.error(f"frame {frame.index}: {exc}")
                failing += 1
                if failing >= MAX_CONSECUTIVE_MODEL_ERRORS:
                    self.log(f"mke-live: the model failed on {failing} frames in a row; stopping")
                    self.stop("model failing")
                    break
                continue
            failing = 0
            model_ms = (time.perf_counter() - start) * 1e3
            latency_ms = (time.monotonic() - frame.arrival_s) * 1e3
            stats.done(latency_ms, model_ms, frame.audio_underrun)
            timing = Timing(latency_ms, model_ms, prep_ms)
            while self._failure is None:  # every counted result reaches the sinks, also while stopping
                try:
                    self._out.put((frame, outputs, timing), timeout=0.1)
                    break
                except queue.Full:
                    continue
            if opts.max_frames is not None and stats.counts["processed"] >= opts.max_frames:
                self.stop("frame limit")
                break

    def _output(self) -> None:
        active, spec = list(self.sinks), self.runner.spec
        while True:
            item = self._out.get()
            if item is None:
                return
            frame, outputs, timing = item
            prediction = decode(outputs, spec)
            for sink in list(active):
                try:
                    sink.write(frame, prediction, timing, self.stats)
                except StopRequested as exc:  # the window was closed: the files still get the rest
                    active.remove(sink)
                    self.stop(str(exc) or "window closed")

    # ---------------------------------------------------------------------------------- running
    def run(self) -> dict:
        """Run until the stream ends, the frame limit, stop() or a lost device; the summary dict."""
        threads = [threading.Thread(target=self._guard(self._capture), name="mke-capture", daemon=True),
                   threading.Thread(target=self._guard(self._infer), name="mke-infer", daemon=True)]
        output = threading.Thread(target=self._guard(self._output), name="mke-output", daemon=True)
        output.start()
        for t in threads:
            t.start()
        next_line = time.monotonic() + self.options.stats_every_s
        infer = threads[1]
        while infer.is_alive():
            infer.join(0.1)
            if self.options.stats_every_s and time.monotonic() >= next_line:
                self.log(self.stats.line())
                next_line += self.options.stats_every_s
        self._stop.set()
        threads[0].join(10.0)
        while output.is_alive():
            try:
                self._out.put(None, timeout=0.1)
                break
            except queue.Full:
                continue
        output.join()
        if self._failure is not None:
            raise self._failure
        if self.reason is None:
            self.reason = "end of stream"
        summary = self.stats.summary()
        summary["exit"] = self.reason
        return summary

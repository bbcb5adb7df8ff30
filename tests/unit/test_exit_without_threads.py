"""The export worker's stop where no thread may start (CPython 3.12.0 and 3.12.1 at exit): what is
left is shipped on the stopping thread, within the stop's timeout."""

from __future__ import annotations

import threading
import time

import pytest

from tests.unit.test_export_rules import Recorder, filled, worker_for


@pytest.fixture
def no_new_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(thread: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", refuse)


def test_stop_ships_what_is_left_on_its_own_thread(no_new_threads: None) -> None:
    recorder = Recorder()
    queue = filled(5)
    worker = worker_for(queue, recorder, batch_size=2)
    assert worker.stop(timeout=10) is True
    assert [item[1] for item in recorder.emitted] == [0, 1, 2, 3, 4] and len(queue) == 0
    assert len(recorder.batches) == 3
    assert all(deadline is not None for deadline in recorder.deadlines)


def test_stop_on_its_own_thread_keeps_its_timeout_behind_a_stuck_export(no_new_threads: None) -> None:
    recorder = Recorder()
    queue = filled(3)
    worker = worker_for(queue, recorder)
    worker.pause(timeout=1.0)  # the export thread's batch in flight, as far as stop can tell
    try:
        started = time.monotonic()
        assert worker.stop(timeout=0.2) is False
        assert time.monotonic() - started < 5
        assert len(queue) == 3 and recorder.emitted == []
    finally:
        worker.resume()


def test_stop_reports_what_its_own_thread_could_not_ship(no_new_threads: None) -> None:
    recorder = Recorder(delivers=False)
    worker = worker_for(filled(4), recorder, batch_size=2)
    assert worker.stop(timeout=10) is True  # the queue emptied: the rest is counted, not retried
    assert len(recorder.batches) == 1

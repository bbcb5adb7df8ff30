"""Work that may wait on the network (otel_liveview/_internal/bounded.py): the caller waits for it until
a deadline and no longer, and an error in it is an answer (False), never an exception."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from otel_liveview._internal import bounded


def fail(deadline: float) -> None:
    raise RuntimeError("broken exporter")


def test_within_waits_for_the_work_until_the_deadline_only() -> None:
    assert bounded.within(time.monotonic() + 5, lambda deadline: None) is True
    assert bounded.within(time.monotonic() + 5, fail) is False
    done = threading.Event()
    started = time.monotonic()
    assert bounded.within(started + 0.2, lambda deadline: done.wait(5)) is False
    assert 0.15 < time.monotonic() - started < 1
    done.set()


def test_within_hands_the_work_its_deadline_on_a_daemon_thread() -> None:
    seen: list[tuple[float, bool, bool]] = []
    deadline = time.monotonic() + 5

    def work(given: float) -> None:
        thread = threading.current_thread()
        seen.append((given, thread.daemon, thread is threading.main_thread()))

    assert bounded.within(deadline, work)
    assert seen == [(deadline, True, False)]


def test_within_a_deadline_already_past_does_not_wait() -> None:
    done = threading.Event()
    started = time.monotonic()
    assert bounded.within(started - 1, lambda deadline: done.wait(5)) is False
    assert time.monotonic() - started < 0.5
    done.set()


def test_work_that_returns_false_still_finished() -> None:
    assert bounded.within(time.monotonic() + 5, lambda deadline: False) is True
    assert bounded.quietly(lambda deadline: False, 0.0) is True


def test_without_a_new_thread_the_work_runs_in_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_thread(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    seen: list[tuple[float, threading.Thread]] = []
    assert bounded.within(12.5, lambda deadline: seen.append((deadline, threading.current_thread())))
    assert seen == [(12.5, threading.current_thread())]
    assert bounded.within(12.5, fail) is False


def test_quietly_runs_the_work_with_its_deadline_and_logs_an_error_at_debug_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[float] = []
    assert bounded.quietly(seen.append, 3.0) is True
    assert seen == [3.0]
    with caplog.at_level(logging.DEBUG, logger="otel_liveview"):
        assert bounded.quietly(fail, 0.0) is False
    (record,) = caplog.records
    assert (record.name, record.levelno) == ("otel_liveview", logging.DEBUG)
    assert record.getMessage() == "flushing or shutting down the pipeline failed"
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


def test_acquire_waits_for_a_lock_until_the_deadline_only() -> None:
    lock = threading.Lock()
    assert bounded.acquire(lock, None) and lock.locked()  # free: taken at once, no deadline needed
    started = time.monotonic()
    assert not bounded.acquire(lock, started + 0.2)
    assert 0.15 < time.monotonic() - started < 1
    assert not bounded.acquire(lock, started - 1)  # a deadline already past: no wait at all
    lock.release()
    assert bounded.acquire(lock, time.monotonic() + 1)
    threading.Timer(0.1, lock.release).start()
    assert bounded.acquire(lock, time.monotonic() + 5), "taken once its holder lets go"
    lock.release()
    assert not bounded.acquire(lock, time.monotonic() - 1), "past: not taken even when free"

"""The outage markers a process tree shares (otel_liveview._internal.otlp.OutageMarkers), in-process."""

from __future__ import annotations

import os
import time
from pathlib import Path

from otel_liveview._internal.otlp import OutageMarkers

KEY = ("metrics", "http://127.0.0.1:4318/v1/metrics")


def test_the_first_claim_reports_and_the_first_release_ends(tmp_path: Path) -> None:
    parent, child = OutageMarkers("1-a", str(tmp_path)), OutageMarkers("1-a", str(tmp_path))
    assert parent.claim(KEY) and not child.claim(KEY)  # the tree's outage is said once
    assert child.claim(("logs", KEY[1]))  # another signal is an outage of its own
    lasted = child.release(KEY, seen=0.5)
    assert lasted is not None and lasted >= 0.5  # whoever gets through first says so
    assert parent.release(KEY, seen=0.5) is None  # and only once
    assert parent.claim(KEY)  # a new outage is said again


def test_another_tree_has_its_own_markers(tmp_path: Path) -> None:
    assert OutageMarkers("1-a", str(tmp_path)).claim(KEY)
    assert OutageMarkers("2-b", str(tmp_path)).claim(KEY)


def test_without_a_usable_directory_each_process_reports(tmp_path: Path) -> None:
    markers = OutageMarkers("1-a", str(tmp_path / "missing"))
    assert markers.claim(KEY) and markers.claim(KEY)
    assert markers.release(KEY, seen=2.0) == 2.0


def test_clear_removes_only_the_trees_markers(tmp_path: Path) -> None:
    mine, other = OutageMarkers("1-a", str(tmp_path)), OutageMarkers("2-b", str(tmp_path))
    mine.claim(KEY)
    mine.claim(("logs", KEY[1]))
    other.claim(KEY)
    mine.clear()
    assert [path.name.split("-")[3:5] for path in tmp_path.iterdir()] == [["2", "b"]]


def test_markers_a_day_old_go_when_an_outage_starts(tmp_path: Path) -> None:
    """Left by a tree that was killed during an outage; a live tree's marker is younger."""
    killed, live = OutageMarkers("1-a", str(tmp_path)), OutageMarkers("2-b", str(tmp_path))
    killed.claim(KEY)
    live.claim(KEY)
    old = time.time() - OutageMarkers.STALE - 60
    for path in tmp_path.glob("otel-liveview-outage-1-a-*"):
        os.utime(path, (old, old))
    assert OutageMarkers("3-c", str(tmp_path)).claim(KEY)
    assert sorted(path.name.split("-")[3] for path in tmp_path.iterdir()) == ["2", "3"]

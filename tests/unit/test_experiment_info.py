"""An experiment's configuration, start and end, and declared progress: the series and records the
dashboard's info, elapsed and progress panels read (docs/naming.md)."""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from typing import Any

import pytest

from otel_liveview import ExperimentBroadcaster, LiveViewExperiment
from otel_liveview._internal import mapping
from tests.unit.test_broadcaster import points, records, sdk  # noqa: F401  the module's SDK providers


@dataclasses.dataclass
class Optimizer:
    name: str = "adam"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)


def test_info_keywords_become_one_info_series_and_an_event() -> None:
    topic = "info:series"
    with LiveViewExperiment(
        "mnist", base_topic=topic, seed=7, model={"depth": 3, "act": "relu"}, optimizer=Optimizer(), job="x"
    ):
        pass
    ((labels, value),) = points("liveview.experiment.info", topic).items()
    assert value == 1
    assert dict(labels) == {
        "experiment": "mnist",
        "topic": topic,
        "host": socket.gethostname(),
        "pid": str(os.getpid()),
        "seed": "7",
        "model.depth": "3",
        "model.act": "relu",
        "optimizer.name": "adam",
        "optimizer.lr": "0.001",
        "optimizer.betas": "[0.9,0.999]",
        "info_job": "x",  # one of the series' own labels: renamed, never overriding
    }
    (event,) = [r for r in records(topic) if r.event_name == "liveview.info"]
    assert event.body["info"]["model"] == {"depth": 3, "act": "relu"}
    assert event.body["experiment"] == "mnist"


def test_info_is_capped_and_values_are_text() -> None:
    labels = mapping.info_labels({f"k{i:03}": i for i in range(100)} | {"flag": True})
    assert len(labels) == mapping.MAX_INFO_KEYS == 64
    assert labels["k000"] == "0" and "k099" not in labels
    long = mapping.info_labels({"note": "x" * 1000, "none": None, "ok": False, "blob": b"\x01\x02"})
    assert long == {"note": "x" * 256, "none": "", "ok": "false", "blob": "0102"}
    with pytest.raises(TypeError, match="info for experiment 'e' must be a dict, not list"):
        ExperimentBroadcaster("info:bad").publish_info_sync("e", [1, 2])  # type: ignore[arg-type]


def test_start_and_end_time_give_the_elapsed_time() -> None:
    topic = "info:elapsed"
    before = time.time()
    with LiveViewExperiment("timed", base_topic=topic):
        started = points("liveview.experiment.start_time_seconds", topic)
        assert points("liveview.experiment.end_time_seconds", topic) == {}  # still running
    after = time.time()
    key = frozenset({("experiment", "timed"), ("topic", topic)})
    start, end = started[key], points("liveview.experiment.end_time_seconds", topic)[key]
    assert before <= start <= end <= after


def test_a_failed_run_has_an_end_too() -> None:
    topic = "info:failed"
    with pytest.raises(ValueError), LiveViewExperiment("broken", base_topic=topic):
        raise ValueError("diverged")
    key = frozenset({("experiment", "broken"), ("topic", topic)})
    assert points("liveview.experiment.end_time_seconds", topic)[key] > 0


def totals(topic: str) -> dict[tuple[str, str], float]:
    return {
        (dict(k)["phase"], dict(k)["unit"]): v
        for k, v in points("liveview.experiment.planned", topic).items()
    }


def test_totals_by_keyword_and_by_call_in_both_forms() -> None:
    import asyncio

    topic = "info:totals"
    with LiveViewExperiment("run", base_topic=topic, totals={"train": {"steps": 500, "epochs": 10}}) as run:
        run.publish_total_sync("eval", steps=50)
        asyncio.run(run.publish_total("test", epochs=2))
        run.publish_total_sync("train", steps=600)  # a total may change
    assert totals(topic) == {
        ("train", "steps"): 600,
        ("train", "epochs"): 10,
        ("eval", "steps"): 50,
        ("test", "epochs"): 2,
    }


@pytest.mark.parametrize(
    ("phase", "kwargs", "message"),
    [
        ("", {"steps": 1}, "phase must be a non-empty string"),
        ("train", {}, "declare steps or epochs"),
        ("train", {"steps": 0}, "total steps for phase 'train' must be positive, not 0"),
        ("train", {"epochs": "ten"}, "value must be a real number"),
    ],
)
def test_bad_totals_are_clear_errors(phase: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        ExperimentBroadcaster("info:bad").publish_total_sync("run", phase, **kwargs)


def test_a_second_run_of_the_same_name_has_no_end_until_it_ends() -> None:
    topic = "info:again"
    key = frozenset({("experiment", "twice"), ("topic", topic)})
    with LiveViewExperiment("twice", base_topic=topic):
        pass
    assert key in points("liveview.experiment.end_time_seconds", topic)
    with LiveViewExperiment("twice", base_topic=topic):
        assert key not in points("liveview.experiment.end_time_seconds", topic)
    assert key in points("liveview.experiment.end_time_seconds", topic)

"""The last-value tables and self-telemetry counters (otel_liveview._internal.tables): caps, counts, the
instrument names of docs/naming.md, and the reset a forked child starts from."""

from __future__ import annotations

import logging
import math
import threading

import pytest

from otel_liveview._internal.tables import GaugeTable, Tables, Tally, TallyFamily

KEY = (("metric", "loss"), ("topic", "t"))


def test_a_gauge_table_keeps_the_last_value_and_caps_new_series() -> None:
    table = GaugeTable(limit=2)
    assert table.set(KEY, 1.0) and table.set(KEY, 2.0)
    assert table.set((("metric", "acc"),), 0.5)
    assert not table.set((("metric", "lr"),), 0.1)  # a third series: refused
    assert table.set(KEY, 3.0)  # a known series still updates when the table is full
    assert sorted(table.items()) == [((("metric", "acc"),), 0.5), (KEY, 3.0)]
    table.clear()
    assert table.items() == []


def test_counters_count_single_and_bulk_additions() -> None:
    counter = Tally()
    assert counter.value == 0
    counter.add()
    counter.add(1)
    counter.add(5)
    counter.add(0)
    assert counter.value == 7


def test_bulk_additions_from_many_threads_are_not_lost() -> None:
    counter = Tally()

    def work() -> None:
        for _ in range(1000):
            counter.add(3)
            counter.add()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.value == 4 * 1000 * 4


def test_a_reset_counter_starts_from_zero_and_still_counts() -> None:
    counter = Tally()
    counter.add()
    counter.add(10)
    counter.reset()
    assert counter.value == 0
    counter.add()
    counter.add(2)
    assert counter.value == 3


def test_a_counter_family_has_one_counter_per_key() -> None:
    family = TallyFamily()
    assert list(family.items()) == []
    first = family.get((("kind", "metric"),))
    assert family.get((("kind", "metric"),)) is first
    first.add()
    family.get((("kind", "log"),)).add(4)
    assert dict(family.items()) == {(("kind", "metric"),): 1, (("kind", "log"),): 4}


def test_a_reset_family_keeps_its_counters_at_zero_and_takes_new_keys() -> None:
    family = TallyFamily()
    held = family.get((("kind", "metric"),))  # the broadcaster holds its counters for good
    held.add(3)
    family.reset()
    assert dict(family.items()) == {(("kind", "metric"),): 0}
    held.add()
    family.get((("kind", "data"),)).add(2)  # a key first seen after the reset
    assert dict(family.items()) == {(("kind", "metric"),): 1, (("kind", "data"),): 2}


def test_instrument_names_are_the_naming_contract() -> None:
    tables = Tables()
    gauges = tables.gauges()
    assert gauges == {
        "liveview.metric": tables.metric,
        "liveview.metric.step": tables.step,
        "liveview.metric.epoch": tables.epoch,
        "liveview.metric.nonfinite": tables.nonfinite,
        "liveview.data": tables.data,
        "liveview.experiment.status": tables.status,
        "liveview.experiment.info": tables.info,
        "liveview.experiment.start_time_seconds": tables.start_time,
        "liveview.experiment.end_time_seconds": tables.end_time,
        "liveview.experiment.planned": tables.planned,
        "liveview.launch.world_size": tables.world_size,
        "liveview.launch.restarts": tables.restart_count,
        "liveview.launch.step": tables.launch_step,
    }
    assert len({id(table) for table in gauges.values()}) == len(gauges)  # one table per instrument


def test_every_instrument_has_a_description_of_its_own() -> None:
    """What reaches OTLP's description and Prometheus' HELP: one line each, never the name again."""
    tables = Tables()
    descriptions = {name: tables.description(name) for name in tables.gauges()}
    descriptions |= {name: description for name, (description, _) in tables.counters().items()}
    assert len(set(descriptions.values())) == len(descriptions)
    for name, description in descriptions.items():
        assert not description[0].islower() and "\n" not in description and len(description) < 80, name
        assert name not in description and name.replace(".", "_") not in description, name


@pytest.mark.parametrize("limit", [1, 3])
def test_every_gauge_is_capped_at_max_series(limit: int) -> None:
    tables = Tables(max_series=limit)
    for name, table in tables.series_gauges().items():
        for i in range(limit):
            assert table.set((("n", str(i)),), 1.0), name
        assert not table.set((("n", "one too many"),), 1.0), name


def test_resize_changes_every_cap() -> None:
    tables = Tables(max_series=1, max_stream_keys=1)
    tables.resize(max_series=3, max_stream_keys=2)
    for name, table in tables.series_gauges().items():
        assert all(table.set((("n", str(i)),), 1.0) for i in range(3)), name
        assert not table.set((("n", "3"),), 1.0), name
    assert [tables.stream_series("t", "s", k) is not None for k in "abc"] == [True, True, False]


def test_stream_keys_are_capped_per_stream_and_their_series_named() -> None:
    tables = Tables(max_stream_keys=2)
    assert tables.stream_series("t", "s", "a") == (("key", "a"), ("stream", "s"), ("topic", "t"))
    assert tables.stream_series("t", "s", "b") == (("key", "b"), ("stream", "s"), ("topic", "t"))
    assert tables.stream_series("t", "s", "c") is None  # the stream's third key
    assert tables.stream_series("t", "s", "a") == (("key", "a"), ("stream", "s"), ("topic", "t"))
    assert tables.stream_series("t", "other", "c") is not None  # each stream has its own keys
    assert tables.stream_series("u", "s", "c") is not None  # and each topic


def test_published_and_dropped_counts_by_kind_and_reason() -> None:
    tables = Tables()
    tables.published_counter("metric").add()
    tables.published_counter("metric").add(2)
    tables.published_counter("log").add()
    tables.count_dropped("data", "queue_full")
    tables.count_dropped("data", "queue_full", 4)
    tables.count_dropped("points", "export_failed", 7)
    assert dict(tables.published.items()) == {(("kind", "metric"),): 3, (("kind", "log"),): 1}
    assert dict(tables.dropped.items()) == {
        (("kind", "data"), ("reason", "queue_full")): 5,
        (("kind", "points"), ("reason", "export_failed")): 7,
    }


def test_a_drop_is_logged_once_per_kind_and_reason_and_export_failures_not_at_all(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tables = Tables()
    with caplog.at_level(logging.WARNING, logger="otel_liveview"):
        for _ in range(3):
            tables.count_dropped("data", "queue_full")
            tables.count_dropped("log", "queue_full")
            tables.count_dropped("log", "export_failed")  # the outage has its own line
    assert [record.getMessage() for record in caplog.records] == [
        "otel-liveview dropped data telemetry (queue_full); see liveview_dropped_total",
        "otel-liveview dropped log telemetry (queue_full); see liveview_dropped_total",
    ]


def test_clear_is_a_fresh_start_for_a_forked_child(caplog: pytest.LogCaptureFixture) -> None:
    tables = Tables(max_stream_keys=1)
    published = tables.published_counter("metric")
    for table in tables.gauges().values():
        if isinstance(table, GaugeTable):  # the launch step is read from the step table
            table.set(KEY, 1.0)
    tables.launch_step.enabled = True
    tables.nonfinite_seen.add(KEY)
    tables.stream_series("t", "s", "a")
    published.add(3)
    tables.count_dropped("data", "queue_full", 2)
    tables.clear()

    assert all(table.items() == [] for table in tables.gauges().values())
    assert tables.nonfinite_seen == set()
    assert tables.stream_series("t", "s", "b") is not None  # the stream's key budget is back
    assert (
        published.value == 0
        and not any(v for _, v in tables.published.items())
        and not any(v for _, v in tables.dropped.items())
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="otel_liveview"):
        tables.count_dropped("data", "queue_full")  # the child says it once again
    assert len(caplog.records) == 1


def test_the_default_caps_are_2000_series_per_gauge_and_64_keys_per_stream() -> None:
    tables = Tables()
    assert all(tables.metric.set((("n", str(i)),), 1.0) for i in range(2_000))
    assert not tables.metric.set((("n", "2000"),), 1.0)
    assert all(tables.stream_series("t", "s", str(i)) for i in range(64))
    assert tables.stream_series("t", "s", "64") is None


def test_the_launch_gauges_hold_one_point_whatever_the_cap() -> None:
    tables = Tables(max_series=5)
    tables.resize(max_series=10, max_stream_keys=2)
    for table in (tables.world_size, tables.restart_count):
        assert table.set((), 4.0) and table.set((), 5.0)  # the one point, updated
        assert not table.set((("n", "1"),), 1.0)


def test_the_launch_step_is_the_furthest_step_per_topic_once_launched() -> None:
    tables = Tables()
    for metric, topic, step in (
        ("loss", "a", 10.0),
        ("acc", "a", 12.0),
        ("loss", "b", 3.0),
        ("bad", "b", math.nan),
    ):
        tables.step.set((("metric", metric), ("topic", topic)), step)
    assert tables.launch_step.items() == []  # not launched: no series
    tables.launch_step.enabled = True
    assert sorted(tables.launch_step.items()) == [((("topic", "a"),), 12.0), ((("topic", "b"),), 3.0)]
    tables.clear()
    assert not tables.launch_step.enabled and tables.launch_step.items() == []

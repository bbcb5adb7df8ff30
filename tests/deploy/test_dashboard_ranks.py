"""The dashboard's rank-aware panels against a real launch: `mpirun -n 4` of a training loop in which
rank 3 is a straggler (a quarter of the pace) and rank 2 fails at step 10 and stays up, every rank
exporting into the Prometheus 3.14 docker-compose.yml pins (shipped OTLP settings), the variables
resolved as Grafana resolves them (tests/support/grafana.py)."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import pytest

from tests.support import grafana
from tests.support.launchers import training
from tests.support.processes import publisher_env
from tests.support.receiver import serving_http
from tests.support.servers import query, start_shipped_prometheus_3, wait_for_series

pytestmark = pytest.mark.servers

DASHBOARD = grafana.load()
SERVICE = "ranks-dashboard"
TOPIC = "dashboard:ranks"
RANK_PANELS = grafana.row_titles(DASHBOARD, "Ranks")


class Board(grafana.Board):
    def per_rank(self, title: str, ref: str = "A") -> dict[int, float]:
        return {int(rank): value for rank, value in self.by("liveview_rank", title, ref).items()}


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Board]:
    workdir = tmp_path_factory.mktemp("ranks-dashboard")
    prometheus = start_shipped_prometheus_3(workdir / "prometheus")
    try:
        with serving_http() as logs:
            env = publisher_env(
                metrics=prometheus.url + "/api/v1/otlp/v1/metrics",
                logs=logs.endpoint + "/v1/logs",
                OTEL_METRIC_EXPORT_INTERVAL="200",
                OTEL_SERVICE_NAME=SERVICE,
                LIVEVIEW_TEST_SLOW_RANK="3",
                LIVEVIEW_TEST_FAILING_RANK="2",
                LIVEVIEW_TEST_TOPIC=TOPIC,
            )
            with training(4, env, workdir):
                job = f'job="{SERVICE}"'
                # Two samples of each rank's step in the last minute (deriv), rank 2 failed, and the
                # leading rank well past the failed one.
                wait_for_series(
                    prometheus, f'liveview_experiment_status{{{job},status="failed"}} == 1', timeout=60
                )
                wait_for_series(
                    prometheus,
                    f"count(deriv(liveview_metric_step{{{job}}}[1m]) > 0) == 3 and max(liveview_metric_step{{{job}}}) > 60",
                    timeout=90,
                )
                now = time.time()
                yield Board.on_load(prometheus.url, {"service": SERVICE, "topic": TOPIC}, now)
    finally:
        prometheus.stop()


def _run_id(board: Board) -> str:
    (series,) = query(
        board.base_url, f'max by (liveview_run_id) (liveview_launch_world_size{{job="{SERVICE}"}})'
    )
    return str(series["metric"]["liveview_run_id"])


def test_the_run_and_rank_variables_are_the_launch_and_its_ranks(board: Board) -> None:
    assert board.values["run"] == _run_id(board) != ""
    (ranks,) = [found for key, found in board.options.items() if key.startswith("liveview_rank of ")]
    assert ranks == ["0", "1", "2", "3"]
    assert board.values["rank"] == ".*"


def test_every_rank_panel_returns_series_of_the_service_alone(board: Board) -> None:
    for title, target in grafana.targets(DASHBOARD, "prometheus"):
        if title in RANK_PANELS:
            result = board.run(title, target["refId"])
            assert result, f"{title} {target['refId']} returned nothing"
            assert {r["metric"]["job"] for r in result if "job" in r["metric"]} <= {SERVICE}


def test_ranks_alive_of_the_world_size(board: Board) -> None:
    assert board.one("Ranks alive", "A") == 4  # the failed rank is still up and exporting
    assert board.one("Ranks alive", "B") == 4


def test_step_per_rank_and_the_lag_behind_the_leader(board: Board) -> None:
    steps = board.per_rank("Step per rank")
    assert set(steps) == {0, 1, 2, 3}
    assert steps[2] == 10  # failed there
    assert steps[3] < min(steps[0], steps[1]) / 2  # the straggler, at a quarter of the pace
    lag = board.per_rank("Lag behind the leading rank")
    leader = max(steps.values())
    assert lag == {rank: leader - step for rank, step in steps.items()}
    assert min(lag.values()) == 0 and max(lag, key=lag.__getitem__) == 2


def test_step_time_and_the_slowest_ranks(board: Board) -> None:
    fastest, median, slowest = (board.one("Step time", ref) for ref in "ABC")
    assert 0.04 < fastest <= median <= slowest  # at least the 50 ms each step sleeps
    slow = {int(r["metric"]["liveview_rank"]): float(r["value"][1]) for r in board.run("Slowest ranks")}
    assert set(slow) == {0, 1, 3}  # rank 2 no longer steps: it has no step time
    assert max(slow, key=slow.__getitem__) == 3 and slow[3] == pytest.approx(slowest)
    assert slow[3] > 2 * max(slow[0], slow[1])
    assert {r["metric"]["liveview_node_name"] for r in board.run("Slowest ranks")} == {socket.gethostname()}


def test_one_experiment_across_ranks_failed_by_its_failed_rank(board: Board) -> None:
    (status,) = board.run("Experiment status")
    assert status["metric"]["experiment"] == "ddp" and float(status["value"][1]) == 5  # mapped to "failed"
    (panel,) = [p for p in grafana.panels(DASHBOARD) if p["title"] == "Experiment status"]
    mapping = panel["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert mapping["5"]["text"] == "failed"
    (failed,) = board.run("Rank status")
    assert (failed["metric"]["liveview_rank"], failed["metric"]["status"]) == ("2", "failed")
    (info,) = board.run("Experiment info")  # four ranks ran the experiment: its info once
    assert (info["metric"]["liveview_rank"], info["metric"]["lr"]) == ("0", "0.1")


def test_process_rows_are_named_by_rank_and_node(board: Board) -> None:
    (texts,) = [found for expr, found in board.options.items() if "label_join" in expr]
    regex = grafana.js_regex(grafana.variable(DASHBOARD, "instance")["regex"])
    matches = [regex.search(text) for text in texts]
    assert len(matches) == 4 and all(matches)
    assert sorted(m.group("text") for m in matches if m) == [
        f"rank {r} on {socket.gethostname()}" for r in range(4)
    ]
    assert all(re.fullmatch(r"[0-9a-f-]{36}", m.group("value")) for m in matches if m)  # the instance


def test_a_process_without_a_launcher_keeps_its_instance() -> None:
    regex = grafana.js_regex(grafana.variable(DASHBOARD, "instance")["regex"])
    match = regex.search('liveview_published_total{instance="abc",job="x",process=" on "} 3 1000')
    assert match and match.group("value") == "abc" and match.group("text") is None  # Grafana shows the value

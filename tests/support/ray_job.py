"""A Ray job on a local head: four actors publish as experiment code would, with no Ray-specific code
of the library's (it reads job, node and actor from the worker's runtime context)."""

from __future__ import annotations

import ray

import otel_liveview
from otel_liveview import ExperimentBroadcaster


@ray.remote
class Worker:
    def run(self, index: int) -> bool:
        broadcaster = ExperimentBroadcaster(base_topic="experiment:updates:ray")
        broadcaster.publish_metric_sync("loss", 1.0 / (1 + index), step=10, worker=str(index))
        broadcaster.publish_log_sync("info", "actor ready", worker=str(index))
        return otel_liveview.flush(10.0)


def main() -> None:
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        workers = [Worker.remote() for _ in range(4)]  # type: ignore[attr-defined]
        assert all(ray.get([worker.run.remote(index) for index, worker in enumerate(workers)], timeout=120))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()

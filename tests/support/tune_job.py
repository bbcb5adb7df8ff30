"""A Ray Tune run of four trials on a local head, reported through the project's LiveViewCallback;
the trial with lr 0.3 raises, the others complete."""

from __future__ import annotations

import tempfile

import ray
from ray import tune

from otel_liveview.tune import LiveViewCallback


def trainable(config: dict[str, float]) -> None:
    for step in range(3):
        if config["lr"] == 0.3 and step == 1:
            raise FloatingPointError("loss diverged")
        tune.report({"loss": 1.0 / (1 + step) + config["lr"], "phase_name": "train"})


def main() -> None:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            trainable,
            param_space={"lr": tune.grid_search([0.1, 0.2, 0.3, 0.4])},
            run_config=tune.RunConfig(
                name="liveview-tune",
                storage_path=tempfile.mkdtemp(),
                callbacks=[LiveViewCallback()],
                verbose=0,
            ),
        )
        tuner.fit()
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()

"""The suite's fixtures, for every tier (unit, wire, servers, deploy): the in-suite OTLP receiver and
the real servers, and a one-node Slurm cluster."""

pytest_plugins = ["tests.support.receiver", "tests.support.servers", "tests.support.slurm"]

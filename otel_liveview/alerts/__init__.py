"""Alerting: a thresholds file parsed and checked (`thresholds`), rendered as Prometheus rules and
Grafana alert provisioning (`rules`). Needs the `alerts` extra (PyYAML)."""

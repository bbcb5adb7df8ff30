// The alert groups as a Prometheus rule file: jsonnet -J . -S alerts.jsonnet >prometheus_alerts.yaml
std.manifestYamlDoc((import 'mixin.libsonnet').prometheusAlerts)

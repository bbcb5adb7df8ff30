// The otel-liveview monitoring mixin: the dashboard and the alert groups docker-compose.yml and the
// Helm chart ship, read from those very files (nothing here is a copy).
//   jsonnet -J . -m dashboards_out dashboards.jsonnet      # dashboards_out/liveview.json
//   jsonnet -J . -S alerts.jsonnet >prometheus_alerts.yaml  # the alert groups
// Imported from another mixin: (import 'otel-liveview/deploy/mixin/mixin.libsonnet') with the
// repository vendored whole (the files live outside this folder).
local ruleFiles = [
  importstr '../prometheus/rules/liveview-builtin.rules.yml',
  importstr '../prometheus/rules/liveview-thresholds.rules.yml',
];

{
  grafanaDashboards+:: {
    'liveview.json': std.parseJson(importstr '../../grafana_dashboards/liveview.json'),
  },
  prometheusAlerts+:: {
    groups+: std.flattenArrays([std.parseYaml(file).groups for file in ruleFiles]),
  },
}

// One file per dashboard: jsonnet -J . -m dashboards_out dashboards.jsonnet
(import 'mixin.libsonnet').grafanaDashboards

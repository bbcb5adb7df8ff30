{{/* The chart's name, and the objects' name: the release's, with the chart's unless it holds it. */}}
{{- define "otel-liveview.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "otel-liveview.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Kubernetes' recommended labels, on every object. */}}
{{- define "otel-liveview.labels" -}}
app.kubernetes.io/name: {{ include "otel-liveview.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The dashboard JSON as shipped (grafana_dashboards/liveview.json). */}}
{{- define "otel-liveview.dashboard" -}}
{{- .Files.Get "files/liveview.json" }}
{{- end }}

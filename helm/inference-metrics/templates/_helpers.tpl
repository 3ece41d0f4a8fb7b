{{/*
Names, labels and the few derived values every template shares.
*/}}

{{/* Resource name prefix: the release name unless overridden. */}}
{{- define "im.prefix" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* Name of one component's resources: im.name (dict "root" $ "component" "inference"). */}}
{{- define "im.name" -}}
{{- printf "%s-%s" (include "im.prefix" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component. The Prometheus jobs select on these two labels. */}}
{{- define "im.selectorLabels" -}}
app.kubernetes.io/name: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* All labels of one component. */}}
{{- define "im.labels" -}}
{{ include "im.selectorLabels" . }}
app.kubernetes.io/part-of: inference-harness
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* image reference: im.image (dict "root" $ "image" .Values.inference.image) */}}
{{- define "im.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{/* Prometheus scrape annotations for a metrics port. */}}
{{- define "im.scrapeAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ . | quote }}
prometheus.io/path: /metrics
{{- end -}}

{{/* Environment shared by every service. */}}
{{- define "im.loggingEnv" -}}
- name: RUST_LOG
  value: {{ .Values.logging.rustLog | quote }}
- name: LOG_FORMAT
  value: {{ .Values.logging.format | quote }}
{{- end -}}

{{/*
The autoscaling mode, validated. Every template that renders a scaler compares against this,
so exactly one kind of scaler can exist.
*/}}
{{- define "im.autoscalingMode" -}}
{{- $mode := toString .Values.autoscaling.mode -}}
{{- if not (has $mode (list "hpa" "predictive" "keda" "none")) -}}
{{- fail (printf "autoscaling.mode must be one of hpa, predictive, keda or none (got %q). Exactly one scaler may own the inference Deployment." $mode) -}}
{{- end -}}
{{- $mode -}}
{{- end -}}

{{/*
Workers per inference pod: explicit value, else the CPU limit rounded up ("1500m" -> 2).
*/}}
{{- define "im.inferenceWorkers" -}}
{{- if .Values.inference.workers -}}
{{- .Values.inference.workers -}}
{{- else -}}
{{- $cpu := toString (.Values.inference.resources.limits.cpu | default "1") -}}
{{- if hasSuffix "m" $cpu -}}
{{- ceil (divf (trimSuffix "m" $cpu | float64) 1000) | int -}}
{{- else -}}
{{- ceil ($cpu | float64) | int -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
In-cluster URLs of the bundled monitoring subcharts. These follow the subcharts' own naming
(release name, chart name unless the release name contains it, component suffix).
*/}}
{{- define "im.subchartFullname" -}}
{{- $values := index .root.Values .chart -}}
{{- if $values.fullnameOverride -}}
{{- $values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .chart $values.nameOverride -}}
{{- if contains $name .root.Release.Name -}}
{{- .root.Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .root.Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Base URL of the Prometheus HTTP API, or "" when none is known. */}}
{{- define "im.prometheusUrl" -}}
{{- if .Values.prometheus.enabled -}}
{{- $server := .Values.prometheus.server | default dict -}}
{{- $svc := "" -}}
{{- if $server.fullnameOverride -}}
{{- $svc = $server.fullnameOverride -}}
{{- else -}}
{{- $svc = printf "%s-%s" (include "im.subchartFullname" (dict "root" . "chart" "prometheus")) (default "server" $server.name) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- printf "http://%s.%s.svc:80" $svc .Release.Namespace -}}
{{- else -}}
{{- .Values.monitoring.prometheusUrl -}}
{{- end -}}
{{- end -}}

{{/* Base URL of the bundled Loki (monolithic mode, HTTP port 3100). */}}
{{- define "im.lokiUrl" -}}
{{- printf "http://%s.%s.svc:3100" (include "im.subchartFullname" (dict "root" . "chart" "loki")) .Release.Namespace -}}
{{- end -}}

{{/* Where the dispatcher reports latency records. */}}
{{- define "im.reportUrl" -}}
{{- if .Values.dispatcher.reportUrl -}}
{{- .Values.dispatcher.reportUrl -}}
{{- else if .Values.loadTester.enabled -}}
{{- printf "http://%s:3003/storeLatency" (include "im.name" (dict "root" . "component" "load-tester")) -}}
{{- end -}}
{{- end -}}

{{/* NetworkPolicyPeer list of the metrics scrapers. */}}
{{- define "im.scraperPeers" -}}
{{- with .Values.networkPolicy.metricsScrapers }}
{{- toYaml . }}
{{- end }}
{{- end -}}

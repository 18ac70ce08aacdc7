{{/*
Names are fixed, as in deploy/: one agent per cluster, and the agent finds its own objects
(the Lease, the public keys ConfigMap) by these names.
*/}}

{{/* Helm's bookkeeping labels, on every object. */}}
{{- define "gitseal.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/* The agent's own label (selectors use it alone). */}}
{{- define "gitseal.selectorLabels" -}}
app.kubernetes.io/name: gitseal-agent
{{- end }}

{{- define "gitseal.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

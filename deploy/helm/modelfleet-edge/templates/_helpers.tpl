{{- define "modelfleet-edge.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelfleet-edge.selector" -}}
app.kubernetes.io/name: modelfleet-edge
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "modelfleet-edge.labels" -}}
{{ include "modelfleet-edge.selector" . }}
app.kubernetes.io/part-of: modelfleet
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
modelfleet.io/site: {{ .Values.site.id | trunc 63 | quote }}
{{- end -}}

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

{{/* The Secret the join token comes from: the given one, or the chart's own. */}}
{{- define "modelfleet-edge.joinTokenSecret" -}}
{{- $e := .Values.enrollment -}}
{{- if and $e.joinTokenSecret.name $e.joinToken -}}
{{- fail "enrollment: give joinTokenSecret.name or joinToken, not both" -}}
{{- end -}}
{{- if $e.joinTokenSecret.name -}}
{{ $e.joinTokenSecret.name }}
{{- else if $e.joinToken -}}
{{ include "modelfleet-edge.fullname" . }}-join-token
{{- end -}}
{{- end -}}

{{/* The agent holds an identity unless the gateway is plain HTTP. */}}
{{- define "modelfleet-edge.tls" -}}
{{- if hasPrefix "https://" .Values.gatewayURL -}}
true
{{- else if not .Values.insecurePlainHTTP -}}
{{- fail (printf "gatewayURL %q: the gateway is https:// (it authenticates sites by their enrolled certificates); set insecurePlainHTTP=true only for a gateway run with --insecure-no-auth" .Values.gatewayURL) -}}
{{- end -}}
{{- end -}}

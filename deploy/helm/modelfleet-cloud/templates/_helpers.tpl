{{- define "modelfleet-cloud.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelfleet-cloud.labels" -}}
app.kubernetes.io/part-of: modelfleet
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "modelfleet-cloud.image" -}}
{{ printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end -}}

{{- define "modelfleet-cloud.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ default (include "modelfleet-cloud.fullname" .) .Values.serviceAccount.name }}
{{- else -}}
{{ default "default" .Values.serviceAccount.name }}
{{- end -}}
{{- end -}}

{{/* Environment shared by both roles: where Temporal is and how to reach it. */}}
{{- define "modelfleet-cloud.env" -}}
- name: MODELFLEET_TEMPORAL_ADDRESS
  value: {{ .Values.temporal.address | quote }}
- name: MODELFLEET_NAMESPACE
  value: {{ .Values.temporal.namespace | quote }}
- name: MODELFLEET_GATEWAY_URL
  value: {{ printf "http://%s-gateway.%s:%v" (include "modelfleet-cloud.fullname" .) .Release.Namespace .Values.gateway.service.port | quote }}
{{- with .Values.registryURL }}
- name: MODELFLEET_REGISTRY_URL
  value: {{ . | quote }}
{{- end }}
{{- if .Values.temporal.tls.enabled }}
- name: MODELFLEET_TEMPORAL_TLS
  value: "true"
- name: MODELFLEET_TEMPORAL_TLS_CERT
  value: /etc/modelfleet/temporal-tls/tls.crt
- name: MODELFLEET_TEMPORAL_TLS_KEY
  value: /etc/modelfleet/temporal-tls/tls.key
{{- if .Values.temporal.tls.caFromSecret }}
- name: MODELFLEET_TEMPORAL_TLS_CA
  value: /etc/modelfleet/temporal-tls/ca.crt
{{- end }}
{{- with .Values.temporal.tls.serverName }}
- name: MODELFLEET_TEMPORAL_TLS_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- with .Values.temporal.apiKeySecret.name }}
- name: MODELFLEET_TEMPORAL_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $.Values.temporal.apiKeySecret.key | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "modelfleet-cloud.tlsVolume" -}}
{{- if .Values.temporal.tls.enabled }}
- name: temporal-tls
  secret:
    secretName: {{ required "temporal.tls.secretName is required when temporal.tls.enabled" .Values.temporal.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "modelfleet-cloud.tlsMount" -}}
{{- if .Values.temporal.tls.enabled }}
- name: temporal-tls
  mountPath: /etc/modelfleet/temporal-tls
  readOnly: true
{{- end }}
{{- end -}}

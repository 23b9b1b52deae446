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
{{- with .Values.serviceBus.namespace }}
- name: MODELFLEET_SERVICEBUS_NAMESPACE
  value: {{ . | quote }}
{{- end }}
{{- with .Values.releaseKeys.keyVault }}
- name: MODELFLEET_RELEASE_KEY_VAULT
  value: {{ join "," . | quote }}
{{- end }}
- name: MODELFLEET_NAMESPACE
  value: {{ .Values.temporal.namespace | quote }}
- name: MODELFLEET_GATEWAY_URL
  value: {{ include "modelfleet-cloud.gatewayURL" . | quote }}
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

{{/* The gateway's URL as the worker reaches it: HTTPS unless auth is off. */}}
{{- define "modelfleet-cloud.gatewayURL" -}}
{{- if .Values.gateway.url -}}
{{ .Values.gateway.url }}
{{- else -}}
{{ printf "%s://%s-gateway.%s:%v" (include "modelfleet-cloud.scheme" . | lower) (include "modelfleet-cloud.fullname" .) .Release.Namespace .Values.gateway.service.port }}
{{- end -}}
{{- end -}}

{{/* HTTPS with auth on (the gateway then serves nothing else), HTTP without. */}}
{{- define "modelfleet-cloud.scheme" -}}
{{- if .Values.auth.insecureNoAuth -}}HTTP{{- else -}}HTTPS{{- end -}}
{{- end -}}

{{/*
The checks the gateway makes at start, made at rendering instead, so a
release that could only crash-loop does not install. Include it from every
template that depends on auth.
*/}}
{{- define "modelfleet-cloud.validateAuth" -}}
{{- $a := .Values.auth -}}
{{- if not $a.insecureNoAuth -}}
{{- if or (not $a.oidcIssuer) (not $a.oidcAudience) -}}
{{- fail "auth.oidcIssuer and auth.oidcAudience are required: the gateway authenticates every caller with an OIDC bearer token (Entra ID: --set auth.oidcIssuer=https://login.microsoftonline.com/<tenant>/v2.0 --set auth.oidcAudience=<the gateway's application ID>); see deploy/README.md. auth.insecureNoAuth=true turns authentication off (a throwaway cluster only)" -}}
{{- end -}}
{{- if not (kindIs "slice" $a.roleBindings) -}}
{{- fail "auth.roleBindings must be a list of bindings ({role, subjects, groups, appRoles, scope}); the chart writes the file's apiVersion and kind" -}}
{{- end -}}
{{- if and (gt (int .Values.worker.replicas) 0) (not (or .Values.worker.gatewayToken.secretName .Values.worker.gatewayToken.projected.audience .Values.worker.gatewayToken.file)) -}}
{{- fail "worker.gatewayToken: the worker calls the gateway with a bearer token bound to the cloud-worker role: set worker.gatewayToken.secretName, .projected.audience or .file (deploy/README.md)" -}}
{{- end -}}
{{- end -}}
{{- $w := .Values.gateway.webhook -}}
{{- if not (or $w.keysSecret.name $w.entra.jwksURL $w.insecure) -}}
{{- fail "gateway.webhook: the gateway listens on every address, so Event Grid deliveries must authenticate: set gateway.webhook.keysSecret.name (shared keys) or gateway.webhook.entra.jwksURL (with issuers and audiences), or gateway.webhook.insecure=true" -}}
{{- end -}}
{{- if and $w.entra.jwksURL (or (not $w.entra.issuers) (not $w.entra.audiences)) -}}
{{- fail "gateway.webhook.entra.jwksURL needs gateway.webhook.entra.issuers and .audiences" -}}
{{- end -}}
{{- with .Values.worker.gatewayCA -}}
{{- if and .configMapName .secretName -}}
{{- fail "worker.gatewayCA: give configMapName or secretName, not both" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The role bindings file (auth/bindings.go), as the ConfigMap's data. */}}
{{- define "modelfleet-cloud.roleBindingsFile" -}}
role-bindings.yaml: |
  apiVersion: modelfleet.dev/v1
  kind: RoleBindings
  {{- if .Values.auth.roleBindings }}
  bindings:
    {{- toYaml .Values.auth.roleBindings | nindent 4 }}
  {{- else }}
  bindings: []
  {{- end }}
{{- end -}}

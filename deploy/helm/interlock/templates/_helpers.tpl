{{/* Names and labels shared by every template. */}}
{{- define "interlock.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "interlock.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "interlock.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "interlock.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "interlock.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "interlock.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The gateway's pods; the NetworkPolicy of the model pool admits only these. */}}
{{- define "interlock.selectorLabels" -}}
app.kubernetes.io/name: {{ include "interlock.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "interlock.modelSelectorLabels" -}}
app.kubernetes.io/name: {{ include "interlock.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: model-server
{{- end }}

{{- define "interlock.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "interlock.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "interlock.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end }}

{{/* The Secret the pods read their environment from: the given one, or the one the Key Vault CSI driver syncs. */}}
{{- define "interlock.secretName" -}}
{{- if eq .Values.secrets.source "keyvault" -}}
{{ include "interlock.fullname" . }}-kv
{{- else -}}
{{ required "secrets.existingSecret is required when secrets.source is kubernetes" .Values.secrets.existingSecret }}
{{- end -}}
{{- end }}

{{/* Pod-level parts shared by the gateway and the migration Job: identity label, security context. */}}
{{- define "interlock.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsUser }}
fsGroup: {{ .Values.securityContext.runAsUser }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "interlock.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{/* The environment from secrets: every key of the Secret, by reference (no value in the chart). */}}
{{- define "interlock.envFrom" -}}
- secretRef:
    name: {{ include "interlock.secretName" . }}
{{- end }}

{{/* The CSI volume that makes the driver fetch Key Vault secrets and sync them into the Secret above. */}}
{{- define "interlock.csiVolume" -}}
{{- if eq .Values.secrets.source "keyvault" }}
- name: keyvault
  csi:
    driver: secrets-store.csi.k8s.io
    readOnly: true
    volumeAttributes:
      secretProviderClass: {{ include "interlock.fullname" . }}
{{- end }}
{{- end }}

{{- define "interlock.csiMount" -}}
{{- if eq .Values.secrets.source "keyvault" }}
- name: keyvault
  mountPath: /mnt/secrets
  readOnly: true
{{- end }}
{{- end }}

{{/* Addresses of the bundled Redis and PostgreSQL, when the chart runs them (development clusters). */}}
{{- define "interlock.bundledEnv" -}}
{{- if .Values.redis.enabled }}
- name: INTERLOCK_REDIS_URL
  value: redis://{{ include "interlock.fullname" . }}-redis:6379/0
{{- end }}
{{- if .Values.postgresql.enabled }}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "interlock.secretName" . }}, key: POSTGRES_PASSWORD}
- name: INTERLOCK_POSTGRES_DSN
  value: postgresql://{{ .Values.postgresql.user }}:$(POSTGRES_PASSWORD)@{{ include "interlock.fullname" . }}-postgresql:5432/{{ .Values.postgresql.database }}
{{- end }}
{{- end }}

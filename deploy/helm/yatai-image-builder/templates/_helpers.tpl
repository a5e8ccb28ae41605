{{- define "ib.name" -}}{{ .Release.Name }}-image-builder{{- end -}}
{{- define "ib.labels" -}}
app.kubernetes.io/name: yatai-image-builder
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "ib.selector" -}}
app.kubernetes.io/name: yatai-image-builder
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "ib.secret" -}}{{ .Values.dockerRegistry.existingSecret | default (printf "%s-registry" (include "ib.name" .)) }}{{- end -}}

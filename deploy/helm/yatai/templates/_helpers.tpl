{{- define "yatai.name" -}}{{ .Release.Name }}-yatai{{- end -}}
{{- define "yatai.labels" -}}
app.kubernetes.io/name: yatai
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "yatai.selector" -}}
app.kubernetes.io/name: yatai
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "yatai.secret" -}}{{ .Values.existingSecret | default (include "yatai.name" .) }}{{- end -}}

{{- define "op.name" -}}{{ .Release.Name }}-deployment-operator{{- end -}}
{{- define "op.labels" -}}
app.kubernetes.io/name: yatai-deployment-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "op.selector" -}}
app.kubernetes.io/name: yatai-deployment-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

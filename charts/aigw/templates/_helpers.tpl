{{/* Labels every object of the chart carries. */}}
{{- define "aigw.labels" -}}
app.kubernetes.io/name: aigw
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "aigw.serviceAccountName" -}}
{{ .Values.operator.serviceAccount.name }}
{{- end -}}

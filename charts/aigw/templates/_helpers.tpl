{{/* Names, labels and images shared by every template of the aigw chart. */}}

{{- define "aigw.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name; names of namespaced objects derive from it. */}}
{{- define "aigw.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "aigw.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "aigw.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aigw.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "aigw.labels" -}}
helm.sh/chart: {{ include "aigw.chart" . }}
{{ include "aigw.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: aigw
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end -}}
{{- end -}}

{{/* The operator's ServiceAccount (its RBAC in rbac.yaml is bound to it). */}}
{{- define "aigw.serviceAccountName" -}}
{{- .Values.operator.serviceAccount.name -}}
{{- end -}}

{{/* repository[:tag][@digest] from an image block, falling back to another block, then appVersion. */}}
{{- define "aigw.imageRef" -}}
{{- $image := index . 0 -}}
{{- $fallback := index . 1 -}}
{{- $appVersion := index . 2 -}}
{{- $repository := default $fallback.repository $image.repository -}}
{{- $digest := default $fallback.digest $image.digest -}}
{{- $tag := default (default $appVersion $fallback.tag) $image.tag -}}
{{- if $digest -}}
{{- printf "%s@%s" $repository $digest -}}
{{- else -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "aigw.image" -}}
{{- include "aigw.imageRef" (list .Values.image .Values.image .Chart.AppVersion) -}}
{{- end -}}

{{- define "aigw.sidecarImage" -}}
{{- include "aigw.imageRef" (list .Values.sidecar.image .Values.image .Chart.AppVersion) -}}
{{- end -}}

{{/* Objects of the webhook's certificate. */}}
{{- define "aigw.webhookService" -}}
{{- printf "%s-webhook" (include "aigw.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "aigw.webhookTLSSecret" -}}
{{- printf "%s-webhook-tls" (include "aigw.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "aigw.webhookDNSNames" -}}
{{- $svc := include "aigw.webhookService" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson -}}
{{- end -}}

{{/* Namespaces the webhook never sees: kube-system, the release namespace, and the extra ones. */}}
{{- define "aigw.excludedNamespaces" -}}
{{- concat (list "kube-system" .Release.Namespace) .Values.webhook.excludeNamespaces | uniq | sortAlpha | toJson -}}
{{- end -}}

{{/*
The command line of `aigw operator`: the one place where chart values become operator flags
(docs/operator.md; tests/chart/test_render.py parses them with the operator's own parser).
*/}}
{{- define "aigw.operatorArgs" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
- operator
- --log-level={{ $v.operator.logLevel | upper }}
{{- range $v.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
- --peering-name={{ $v.operator.peeringName }}
- --health-port={{ $v.operator.healthPort }}
- --keep-revisions={{ $v.operator.keepRevisions }}
- --webhook-port={{ $v.webhook.port }}
- --webhook-cert-dir={{ .tlsDir }}
{{- if $v.webhook.patchCABundle }}
- --webhook-configuration={{ $v.webhook.configurationName }}
{{- end }}
- --sidecar-image={{ include "aigw.sidecarImage" $root }}
- --sidecar-version={{ include "aigw.sidecarVersion" $root }}
- --sidecar-port={{ $v.sidecar.ports.api }}
- --sidecar-admin-port={{ $v.sidecar.ports.admin }}
- --native-sidecar={{ $v.sidecar.native }}
- --sidecar-drain-timeout={{ $v.sidecar.drainTimeoutSeconds }}
{{- if $v.sidecar.statusFromNetwork }}
- --sidecar-status-from-network
{{- end }}
{{- if $v.sidecar.audit.enabled }}
- --sidecar-audit-size-limit={{ $v.sidecar.audit.sizeLimit }}
{{- else }}
- --sidecar-no-audit
{{- end }}
{{- with $v.sidecar.resources.requests }}
{{- with .cpu }}
- --sidecar-cpu-request={{ . }}
{{- end }}
{{- with .memory }}
- --sidecar-memory-request={{ . }}
{{- end }}
{{- end }}
{{- with $v.sidecar.resources.limits }}
{{- with .cpu }}
- --sidecar-cpu-limit={{ . }}
{{- end }}
{{- with .memory }}
- --sidecar-memory-limit={{ . }}
{{- end }}
{{- end }}
{{- with (and $v.redis.enabled ($v.redis.tls | default dict).secretName) }}
- --sidecar-redis-tls-secret={{ . }}
- --sidecar-redis-tls-dir={{ include "aigw.redisTLSDir" $root }}
{{- end }}
{{- with $v.sidecar.redactionKey.secretName }}
- --sidecar-redaction-key-secret={{ . }}
- --sidecar-redaction-key-secret-key={{ $v.sidecar.redactionKey.secretKey }}
{{- end }}
{{- range $v.operator.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/*
Settings of the injected sidecars themselves: the operator passes every AIGW_SIDECAR_<NAME>
variable of its own to each sidecar it injects as AIGW_<NAME> (docs/operator.md). Each one must
be read by `aigw sidecar` (tests/chart/test_operator_args.py checks the names against
aigw_cli.sidecar_cmd.ENVIRONMENT).
*/}}
{{- define "aigw.sidecarEnv" -}}
{{- $v := .Values -}}
{{- if $v.redis.enabled }}
{{- $tls := $v.redis.tls | default dict }}
- name: AIGW_SIDECAR_REDIS_URL
  value: {{ $v.redis.url | quote }}
{{- range $field, $suffix := dict "caFile" "CA_FILE" "certFile" "CERT_FILE" "keyFile" "KEY_FILE" "serverName" "SERVER_NAME" }}
{{- with (get $tls $field) }}
{{- if and $tls.secretName (ne $field "serverName") (ne (dir .) (include "aigw.redisTLSDir" $)) }}
{{- fail (printf "redis.tls.%s %s must be a file in redis.tls.mountPath %s, where redis.tls.secretName is mounted" $field . (include "aigw.redisTLSDir" $)) }}
{{- end }}
- name: AIGW_SIDECAR_REDIS_TLS_{{ $suffix }}
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- if ne $v.metrics.genaiSemconv "latest" }}
- name: AIGW_SIDECAR_GENAI_SEMCONV
  value: {{ $v.metrics.genaiSemconv | quote }}
{{- end }}
{{- /* OpenTelemetry: AIGW_SIDECAR_OTEL_<NAME> reaches the sidecar as the standard OTEL_<NAME>
(aigw_cli/operator_cmd.py); the injector puts the pod's resource attributes in front of
opentelemetry.resourceAttributes (docs/telemetry.md). */}}
{{- if $v.opentelemetry.enabled }}
- name: AIGW_SIDECAR_OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $v.opentelemetry.endpoint | quote }}
- name: AIGW_SIDECAR_OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $v.opentelemetry.protocol | quote }}
- name: AIGW_SIDECAR_OTEL_TRACES_SAMPLER
  value: parentbased_traceidratio
- name: AIGW_SIDECAR_OTEL_TRACES_SAMPLER_ARG
  value: {{ $v.opentelemetry.samplingRatio | quote }}
- name: AIGW_SIDECAR_OTEL_SERVICE_NAME
  value: {{ $v.opentelemetry.serviceName | quote }}
{{- with $v.opentelemetry.resourceAttributes }}
- name: AIGW_SIDECAR_OTEL_RESOURCE_ATTRIBUTES
  value: {{ include "aigw.resourceAttributes" . | quote }}
{{- end }}
{{- if $v.opentelemetry.propagateBaggage }}
- name: AIGW_SIDECAR_OTEL_PROPAGATORS
  value: tracecontext,baggage
{{- end }}
{{- end }}
{{- end -}}

{{/* Where redis.tls.secretName is mounted in each injected sidecar (no trailing slash). */}}
{{- define "aigw.redisTLSDir" -}}
{{- clean (default "/etc/aigw/redis-tls" ($.Values.redis.tls | default dict).mountPath) -}}
{{- end -}}

{{/* The sidecar version recorded in each injected pod's injection-status annotation. */}}
{{- define "aigw.sidecarVersion" -}}
{{- default .Chart.AppVersion (default .Values.image.tag .Values.sidecar.image.tag) -}}
{{- end -}}

{{/*
The operator serves POST /inject; the entry selected by the namespace label says so in the
path (docs/operator.md). Query strings are not allowed in webhook paths by the apiserver.
*/}}
{{- define "aigw.webhookPath" -}}
{{- if eq .scope "namespace" -}}/inject/namespace{{- else -}}/inject{{- end -}}
{{- end -}}

{{/* OTEL_RESOURCE_ATTRIBUTES from a map: key=value pairs, values percent-encoded, sorted. */}}
{{- define "aigw.resourceAttributes" -}}
{{- $pairs := list -}}
{{- range $key, $value := . -}}
{{- $pairs = append $pairs (printf "%s=%s" $key (urlquery (toString $value) | replace "+" "%20")) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

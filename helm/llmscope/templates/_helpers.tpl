{{/* Names -------------------------------------------------------------------------- */}}

{{- define "llmscope.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llmscope.fullname" -}}
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

{{- define "llmscope.collector.fullname" -}}
{{- printf "%s-collector" (include "llmscope.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llmscope.agent.fullname" -}}
{{- printf "%s-agent" (include "llmscope.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llmscope.postgresql.fullname" -}}
{{- printf "%s-postgresql" (include "llmscope.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llmscope.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "llmscope.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels ------------------------------------------------------------------------- */}}

{{- define "llmscope.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Common labels; call with (dict "ctx" $ "component" "collector") */}}
{{- define "llmscope.labels" -}}
helm.sh/chart: {{ include "llmscope.chart" .ctx }}
{{ include "llmscope.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: llmscope
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "llmscope.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llmscope.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Images ------------------------------------------------------------------------- */}}

{{/* call with (dict "image" .Values.collector.image "ctx" $) */}}
{{- define "llmscope.image" -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{/* Secrets and URLs ---------------------------------------------------------------- */}}

{{/* Secret and key the collector reads LLMSCOPE_DATABASE_URL from: "name key" */}}
{{- define "llmscope.databaseUrlSecret" -}}
{{- if .Values.postgresql.enabled -}}
{{- printf "%s database-url" (include "llmscope.postgresql.fullname" .) -}}
{{- else if .Values.externalDatabase.existingSecret -}}
{{- printf "%s %s" .Values.externalDatabase.existingSecret .Values.externalDatabase.existingSecretKey -}}
{{- else if .Values.externalDatabase.url -}}
{{- printf "%s database-url" (include "llmscope.collector.fullname" .) -}}
{{- else -}}
{{- fail "llmscope: the collector needs a database: set postgresql.enabled=true, externalDatabase.url or externalDatabase.existingSecret" -}}
{{- end -}}
{{- end -}}

{{/* Secret and key of the admin token, or "" */}}
{{- define "llmscope.adminTokenSecret" -}}
{{- if .Values.collector.adminToken.existingSecret -}}
{{- printf "%s %s" .Values.collector.adminToken.existingSecret .Values.collector.adminToken.existingSecretKey -}}
{{- else if .Values.collector.adminToken.value -}}
{{- printf "%s admin-token" (include "llmscope.collector.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "llmscope.agent.tokenSecretName" -}}
{{- default (printf "%s-token" (include "llmscope.agent.fullname" .)) .Values.agent.token.existingSecret -}}
{{- end -}}

{{- define "llmscope.collectorUrl" -}}
{{- if .Values.agent.collectorUrl -}}
{{- .Values.agent.collectorUrl -}}
{{- else -}}
{{- printf "%s://%s.%s.svc:%d" (ternary "https" "http" .Values.collector.tls.enabled) (include "llmscope.collector.fullname" .) .Release.Namespace (int .Values.collector.service.grpcPort) -}}
{{- end -}}
{{- end -}}

{{- define "llmscope.agent.caSecret" -}}
{{- if .Values.agent.tls.caSecret -}}
{{- .Values.agent.tls.caSecret -}}
{{- else if and .Values.collector.tls.enabled (not .Values.agent.collectorUrl) -}}
{{- .Values.collector.tls.secretName -}}
{{- end -}}
{{- end -}}

{{/* TOML ---------------------------------------------------------------------------
     Helm's toToml writes every number as a float (5000 → 5000.0), which the collector's
     and agent's integer keys reject, so the config files are written by these helpers:
     scalars and arrays at the top, then one [table] per map; deeper maps and arrays of maps
     become inline tables, which TOML allows anywhere a value goes. */}}

{{- define "llmscope.tomlKey" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . -}}{{- . -}}{{- else -}}{{- toJson . -}}{{- end -}}
{{- end -}}

{{- define "llmscope.tomlValue" -}}
{{- $v := . -}}
{{- if kindIs "string" $v -}}
{{- toJson $v -}}
{{- else if kindIs "bool" $v -}}
{{- $v -}}
{{- else if or (kindIs "float64" $v) (kindIs "float32" $v) -}}
{{- if eq $v (floor $v) -}}{{- int64 $v -}}{{- else -}}{{- $v -}}{{- end -}}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) (kindIs "int32" $v) (kindIs "uint64" $v) -}}
{{- $v -}}
{{- else if kindIs "slice" $v -}}
[{{- range $i, $e := $v -}}{{- if $i }}, {{ end -}}{{- include "llmscope.tomlValue" $e -}}{{- end -}}]
{{- else if kindIs "map" $v -}}
{ {{- range $i, $k := keys $v | sortAlpha -}}{{- if $i }}, {{ end -}}{{- include "llmscope.tomlKey" $k }} = {{ include "llmscope.tomlValue" (index $v $k) -}}{{- end -}} }
{{- else if kindIs "invalid" $v -}}
{{- fail "llmscope: null values cannot be written to TOML; remove the key instead" -}}
{{- else -}}
{{- toJson $v -}}
{{- end -}}
{{- end -}}

{{- define "llmscope.toml" -}}
{{- $cfg := . -}}
{{- range $k := keys $cfg | sortAlpha -}}
{{- $v := index $cfg $k -}}
{{- if not (kindIs "map" $v) }}
{{ include "llmscope.tomlKey" $k }} = {{ include "llmscope.tomlValue" $v }}
{{- end -}}
{{- end -}}
{{- range $k := keys $cfg | sortAlpha -}}
{{- $v := index $cfg $k -}}
{{- if kindIs "map" $v }}

[{{ include "llmscope.tomlKey" $k }}]
{{- range $k2 := keys $v | sortAlpha }}
{{ include "llmscope.tomlKey" $k2 }} = {{ include "llmscope.tomlValue" (index $v $k2) }}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

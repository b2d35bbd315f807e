{{/*
Names and labels shared by every template. The full name prefixes the cluster-scoped
objects (ClusterRoles, bindings, the admission policy), so two releases in two
namespaces do not overwrite each other's.
*/}}

{{- define "ome-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ome-agent.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* the controller's objects: the full name + "-controller" (fits 63 characters) */}}
{{- define "ome-agent.controllerName" -}}
{{- printf "%s-controller" (include "ome-agent.fullname" . | trunc 52 | trimSuffix "-") }}
{{- end }}

{{- define "ome-agent.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ome
{{ include "ome-agent.selectorLabels" . }}
{{- end }}

{{- define "ome-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ome-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Pod selectors: the component keeps the DaemonSet's and the Deployment's pods apart
(selectors are immutable, so these never change across upgrades).
*/}}
{{- define "ome-agent.agentSelectorLabels" -}}
{{ include "ome-agent.selectorLabels" . }}
app.kubernetes.io/component: node-agent
{{- end }}

{{- define "ome-agent.controllerSelectorLabels" -}}
{{ include "ome-agent.selectorLabels" . }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "ome-agent.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "ome-agent.agentServiceAccount" -}}
{{- if .Values.agent.serviceAccount.create }}
{{- default (include "ome-agent.fullname" .) .Values.agent.serviceAccount.name }}
{{- else }}
{{- required "agent.serviceAccount.name: set the name of an existing ServiceAccount, or agent.serviceAccount.create=true" .Values.agent.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ome-agent.controllerServiceAccount" -}}
{{- if .Values.controller.serviceAccount.create }}
{{- default (include "ome-agent.controllerName" .) .Values.controller.serviceAccount.name }}
{{- else }}
{{- required "controller.serviceAccount.name: set the name of an existing ServiceAccount, or controller.serviceAccount.create=true" .Values.controller.serviceAccount.name }}
{{- end }}
{{- end }}

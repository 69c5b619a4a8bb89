{{- define "kan.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kan.selectorLabels" -}}
app.kubernetes.io/name: kan-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kan.labels" -}}
{{ include "kan.selectorLabels" . }}
app.kubernetes.io/part-of: kan
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "kan.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kan.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kan.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Everything the operator does with the API, and nothing more (see README). */}}
{{- define "kan.operatorRules" -}}
- apiGroups: ["kan.dev"]
  resources: ["recallqueues", "recallgateways", "recallexperiments"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["kan.dev"]
  resources: ["recallqueues/status", "recallgateways/status", "recallexperiments/status"]
  verbs: ["get", "patch"]
- apiGroups: ["kan.dev"]
  resources: ["recallqueues/finalizers", "recallgateways/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["configmaps", "services"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# The gateway pods behind a gateway's Service, polled for experiments' online readout.
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["list"]
{{- end -}}

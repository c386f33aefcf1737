{{/* Labels of every object of the release. */}}
{{- define "skiff.labels" -}}
app.kubernetes.io/name: skiff
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: Helm
helm.sh/chart: skiff-{{ .Chart.Version }}
{{- end }}

{{/* Labels that select the operator's pods; never change them: a DaemonSet's selector is immutable. */}}
{{- define "skiff.selectorLabels" -}}
app.kubernetes.io/name: skiff
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

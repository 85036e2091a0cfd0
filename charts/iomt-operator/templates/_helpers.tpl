{{/*
Names are fixed rather than derived from the release: the operator finds its
webhook configurations, Services and Secrets by these names, and device
segments open their attestation path to pods labelled
app.kubernetes.io/name=iomt-operator.
*/}}

{{- define "iomt-operator.labels" -}}
app.kubernetes.io/name: iomt-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: iomt-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "iomt-operator.selectorLabels" -}}
app.kubernetes.io/name: iomt-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "iomt-operator.image" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag -}}
{{- if .image.digest -}}
{{ .image.repository }}@{{ .image.digest }}
{{- else -}}
{{ .image.repository }}:{{ $tag }}
{{- end -}}
{{- end }}

{{/* allNamespaces is "true" when device identities may live anywhere. */}}
{{- define "iomt-operator.allNamespaces" -}}
{{- if has "*" .Values.deviceNamespaces }}true{{ end -}}
{{- end }}

{{/* webhookCertificate names the cert-manager Certificate of the webhook. */}}
{{- define "iomt-operator.webhookCertificate" -}}
{{ .Release.Namespace }}/iomt-operator-webhook
{{- end }}

{{/* labelList renders a label map as k=v,k=v in key order. */}}
{{- define "iomt-operator.labelList" -}}
{{- $pairs := list -}}
{{- range $k, $v := . -}}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end }}

{{/* checkLifetimes refuses CA lifetimes the operator would refuse at start. */}}
{{- define "iomt-operator.checkLifetimes" -}}
{{- $leaf := trimSuffix "h" .Values.identity.lifetime | int -}}
{{- $ca := trimSuffix "h" .Values.identity.caLifetime | int -}}
{{- if gt $leaf 8760 -}}
{{- fail (printf "identity.lifetime: %dh is longer than 8760h" $leaf) -}}
{{- end -}}
{{- if lt $ca (add (mul 3 $leaf) 1) -}}
{{- fail (printf "identity.caLifetime: %dh is too short for identity.lifetime %dh: a CA is rotated two thirds in and the last certificates it signs must expire before it does, so it must be at least %dh" $ca $leaf (add (mul 3 $leaf) 1)) -}}
{{- end -}}
{{- end }}

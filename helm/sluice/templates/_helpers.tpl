{{/* The chart's name (nameOverride allowed). */}}
{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name; workload suffixes (deliver-<destination>) are added to it, so it
     leaves room for them. */}}
{{- define "sluice.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 30 | trimSuffix "-" -}}
{{- else if contains (include "sluice.name" .) .Release.Name -}}
{{- .Release.Name | trunc 30 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "sluice.name" .) | trunc 30 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sluice.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* host:port of a workload's admin listener through its Service. Argument: dict "root" $ "w"
     workload. */}}
{{- define "sluice.adminAddress" -}}
{{- $port := .w.port -}}
{{- if eq .w.component "admin" }}{{ $port = .root.Values.admin.service.port }}{{ end -}}
{{- printf "%s-%s:%v" (include "sluice.fullname" .root) (.w.adminService | default .w.name) $port -}}
{{- end -}}

{{- define "sluice.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Where every container reads the pipeline file: two levels under /opt/sluice, so that the
     example's relative schema_dir (../../schemas) is the image's /opt/sluice/schemas. */}}
{{- define "sluice.configDir" -}}/opt/sluice/deploy/config{{- end -}}

{{/* The input topic of each consumer stage (common/sl_kafka.h SL_TOPIC_*); its consumer group
     is <prefix><stage>. */}}
{{- define "sluice.inputTopics" -}}
validate: ingress
transform: validated
route: normalized
audit: audit
deadletter: dlq
{{- end -}}

{{/*
The workloads the chart runs, as YAML (read back with fromYaml): one per enabled stage, except
deliver with split, which is one per destination (deliver-<destination>, running
`sluice-deliver --destination <destination>`), and sluice-admin. Each names its binary, admin
port, the keys of existingSecret it reads, and the consumer groups and topics KEDA scales it on.
Every other template ranges over this list, so a workload is defined once. Its admin port is
behind the Service <fullname>-<adminService | default name> (ingress: ingress-admin, since
<fullname>-ingress is the public HTTP Service).
*/}}
{{- define "sluice.workloads" -}}
{{- $prefix := .Values.keda.kafka.topicPrefix -}}
{{- $topics := include "sluice.inputTopics" . | fromYaml -}}
workloads:
{{- range $name, $stage := .Values.stages }}
{{- if $stage.enabled }}
{{- if eq $name "deliver" }}
{{- if and $stage.autoscaling.enabled (not $stage.destinations) }}
{{- fail "stages.deliver.destinations: list the pipeline's destinations (KEDA scales deliver on their groups)" }}
{{- end }}
{{- if $stage.split }}
{{- if not $stage.destinations }}
{{- fail "stages.deliver.split: list the pipeline's destinations in stages.deliver.destinations" }}
{{- end }}
{{- range $dest := $stage.destinations }}
{{- /* Destination names may hold '_' and capitals (the pipeline's alphabet); object names
       and labels may not. */}}
{{- $wname := printf "deliver-%s" ($dest | lower | replace "_" "-") | trimSuffix "-" }}
{{- if gt (len (printf "%s-%s" (include "sluice.fullname" $) $wname)) 63 }}
{{- fail (printf "stages.deliver.destinations: %s-%s is longer than the 63 characters of a Kubernetes name: shorten fullnameOverride" (include "sluice.fullname" $) $wname) }}
{{- end }}
  - name: {{ $wname }}
    component: deliver
    destination: {{ $dest | quote }}
    binary: sluice-deliver
    port: {{ $stage.adminPort }}
    replicas: {{ $stage.replicas }}
    args: {{ concat (list "--destination" $dest) $stage.args | toJson }}
    secretEnv: {{ $stage.secretEnv | toJson }}
    resources: {{ $stage.resources | toJson }}
    pdb: {{ $stage.podDisruptionBudget | toJson }}
    keda: {{ $stage.autoscaling | toJson }}
    triggers:
      - { group: {{ printf "%sdeliver.%s" $prefix $dest | quote }}, topic: {{ printf "%sdeliver.%s" $prefix $dest | quote }} }
{{- end }}
{{- else }}
  - name: deliver
    component: deliver
    binary: sluice-deliver
    port: {{ $stage.adminPort }}
    replicas: {{ $stage.replicas }}
    args: {{ $stage.args | toJson }}
    secretEnv: {{ $stage.secretEnv | toJson }}
    resources: {{ $stage.resources | toJson }}
    pdb: {{ $stage.podDisruptionBudget | toJson }}
    keda: {{ $stage.autoscaling | toJson }}
    triggers:
    {{- range $dest := $stage.destinations }}
      - { group: {{ printf "%sdeliver.%s" $prefix $dest | quote }}, topic: {{ printf "%sdeliver.%s" $prefix $dest | quote }} }
    {{- end }}
{{- end }}
{{- else }}
  - name: {{ $name }}
    component: {{ $name }}
    binary: sluice-{{ $name }}
    port: {{ $stage.adminPort }}
    replicas: {{ $stage.replicas }}
    args: {{ $stage.args | toJson }}
    secretEnv: {{ $stage.secretEnv | toJson }}
    resources: {{ $stage.resources | toJson }}
    pdb: {{ $stage.podDisruptionBudget | toJson }}
    {{- if eq $name "ingress" }}
    http: true
    adminService: ingress-admin
    hpa: {{ $stage.autoscaling | toJson }}
    {{- else if hasKey $topics $name }}
    keda: {{ $stage.autoscaling | toJson }}
    triggers:
      - { group: {{ printf "%s%s" $prefix $name | quote }}, topic: {{ printf "%s%s" $prefix (get $topics $name) | quote }} }
    {{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if .Values.admin.enabled }}
  - name: admin
    component: admin
    binary: sluice-admin
    port: {{ .Values.admin.port }}
    replicas: {{ .Values.admin.replicas }}
    args: {{ .Values.admin.args | toJson }}
    secretEnv: {{ .Values.admin.secretEnv | toJson }}
    resources: {{ .Values.admin.resources | toJson }}
{{- end }}
{{- end -}}

{{/* The environment of a container: its own keys of existingSecret, then values.env.
     Argument: dict "root" $ "keys" (list of secret keys). */}}
{{- define "sluice.env" -}}
{{- $secret := required "existingSecret: name the Secret holding the pipeline's secret ${VAR}s (see values.yaml)" .root.Values.existingSecret -}}
{{- if or .keys .root.Values.env }}
env:
  {{- range .keys }}
  - name: {{ . }}
    valueFrom:
      secretKeyRef: { name: {{ $secret }}, key: {{ . }} }
  {{- end }}
  {{- range $k, $v := .root.Values.env }}
  - name: {{ $k }}
    value: {{ $v | quote }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* A checksum of the values of the given keys of existingSecret, as the cluster holds them
     at install/upgrade time (lookup; empty under `helm template`), so a rotated key rolls the
     pods that read it on the next upgrade. Argument: as sluice.env. */}}
{{- define "sluice.secretChecksum" -}}
{{- $data := dict -}}
{{- $found := lookup "v1" "Secret" .root.Release.Namespace .root.Values.existingSecret -}}
{{- if $found -}}
{{- $data = $found.data | default dict -}}
{{- end -}}
{{- $picked := list -}}
{{- range .keys -}}
{{- $picked = append $picked (printf "%s=%s" . (get $data . | default "")) -}}
{{- end -}}
{{- $picked | toJson | sha256sum -}}
{{- end -}}

{{/* The volumes every Sluice pod mounts: the pipeline file (from ConfigMap `cm`), /tmp, and
     extraVolumes. Argument: dict "root" $ "cm" name. */}}
{{- define "sluice.volumes" -}}
- name: pipeline
  configMap:
    name: {{ .cm }}
- name: tmp
  emptyDir: {}
{{- with .root.Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "sluice.volumeMounts" -}}
- name: pipeline
  mountPath: {{ include "sluice.configDir" . }}
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by every pod of the release. */}}
{{- define "sluice.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
serviceAccountName: {{ include "sluice.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

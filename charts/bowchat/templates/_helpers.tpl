{{/* Names and labels shared by the templates. */}}
{{- define "bowchat.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "bowchat.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "bowchat.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "bowchat.operatorSecret" -}}
{{- .Values.operator.platformSecret.existingSecret | default (printf "%s-operator" (include "bowchat.fullname" .)) -}}
{{- end -}}

{{- define "bowchat.postgresSecret" -}}
{{- .Values.cluster.postgres.existingSecret | default (printf "%s-postgres" (include "bowchat.fullname" .)) -}}
{{- end -}}

{{/* Cluster-mode settings of every role (store on PostgreSQL, bus on Kafka). */}}
{{- define "bowchat.clusterEnv" -}}
- {name: BOWCHAT_STORE__KIND, value: postgres}
- name: BOWCHAT_STORE__POSTGRES__URL
  valueFrom: {secretKeyRef: {name: {{ include "bowchat.postgresSecret" . }}, key: url}}
- {name: BOWCHAT_BUS__KIND, value: kafka}
- {name: BOWCHAT_BUS__KAFKA__BOOTSTRAP, value: {{ required "cluster.kafka.bootstrap is required in cluster mode" .Values.cluster.kafka.bootstrap | quote }}}
- {name: BOWCHAT_BUS__KAFKA__TOPIC_PREFIX, value: {{ .Values.cluster.kafka.topicPrefix | quote }}}
- {name: BOWCHAT_BUS__KAFKA__PARTITIONS, value: {{ .Values.cluster.kafka.partitions | quote }}}
{{- end -}}

{{- define "bowchat.kekSecret" -}}
{{- .Values.auth.keyEncryptionKey.existingSecret | default (printf "%s-kek" (include "bowchat.fullname" .)) -}}
{{- end -}}

{{/* The key-encryption key of the signing keys, from its Secret (every role). */}}
{{- define "bowchat.kekEnv" -}}
- name: BOWCHAT_AUTH__KEY_ENCRYPTION_KEY
  valueFrom: {secretKeyRef: {name: {{ include "bowchat.kekSecret" . }}, key: {{ .Values.auth.keyEncryptionKey.key | quote }}}}
{{- end -}}

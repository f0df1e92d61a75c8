{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "sluice.fullname" -}}
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

{{/* Labels selecting the controller pods (stable across upgrades). */}}
{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{/* Labels on every object. */}}
{{- define "sluice.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sluice
{{- end }}

{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The leader-election Lease name: one per instance id, as the controller computes it. */}}
{{- define "sluice.leaseName" -}}
{{- if .Values.controller.instanceID }}
{{- printf "sluice-controller-lock-%s" .Values.controller.instanceID }}
{{- else }}
{{- print "sluice-controller-lock" }}
{{- end }}
{{- end }}

{{/*
The controller's permissions, exactly what its code calls (shared by the ClusterRole of a
cluster-wide install and the Role of a namespaced one). Secrets are not here: see rbac.yaml.
*/}}
{{- define "sluice.controllerRules" -}}
# Rollouts: watched through a reflector; the revision annotation is merge-patched.
- apiGroups: ["argoproj.io"]
  resources: ["rollouts"]
  verbs: ["list", "watch", "patch"]
# Status is written as a JSON merge patch guarded by resourceVersion.
- apiGroups: ["argoproj.io"]
  resources: ["rollouts/status"]
  verbs: ["patch"]
# ReplicaSets and AnalysisRuns carry an owner reference with blockOwnerDeletion, which clusters
# running the OwnerReferencesPermissionEnforcement admission plugin only allow with update on the
# owner's finalizers.
- apiGroups: ["argoproj.io"]
  resources: ["rollouts/finalizers"]
  verbs: ["update"]
# AnalysisRuns: cached; created for analysis steps, patched (status included: the CRD has no
# status subresource), deleted beyond the run history limits.
- apiGroups: ["argoproj.io"]
  resources: ["analysisruns"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Templates are only read, from caches.
- apiGroups: ["argoproj.io"]
  resources: ["analysistemplates"{{ if .Values.clusterInstall }}, "clusteranalysistemplates"{{ end }}]
  verbs: ["list", "watch"]
# ReplicaSets: label-filtered reflector; created by server-side apply (which the API server
# authorises as both patch and create), resized by merge patch, deleted beyond
# revisionHistoryLimit.
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Jobs of the job metric provider: label-filtered reflector, created, read, deleted.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "get", "create", "delete"]
# Traffic routers' objects the Rollout names: read, and their weights merge-patched.
- apiGroups: ["networking.istio.io"]
  resources: ["virtualservices", "destinationrules"]
  verbs: ["get", "patch"]
# The NGINX router reads the stable Ingress and creates, then patches, the canary Ingress beside
# it; the SMI router creates, then patches, its TrafficSplit. Read with get, never cached.
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["split.smi-spec.io"]
  resources: ["trafficsplits"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["traefik.io"]
  resources: ["traefikservices"]
  verbs: ["get", "patch"]
- apiGroups: ["apisix.apache.org"]
  resources: ["apisixroutes"]
  verbs: ["get", "patch"]
# The Ambassador router creates, patches and deletes the canary Mapping beside each base one.
- apiGroups: ["getambassador.io"]
  resources: ["mappings"]
  verbs: ["get", "create", "patch", "delete"]
# Services a Rollout names: cached (metadata and selector only); their selector and
# managed-by annotation are merge-patched.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch", "patch"]
# Gateway API routes named by the argoproj-labs/gatewayAPI plugin config: read, and their
# backendRef weights merge-patched (guarded by resourceVersion).
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes", "grpcroutes", "tcproutes", "tlsroutes"]
  verbs: ["get", "patch"]
# Pods are listed (by each Rollout's selector, never watched or cached) and evicted only while a
# `kubectl sluice restart` is being carried out; listed and updated only while a ReplicaSet's pods
# may lack the canary/stable (preview/active) labels and annotations of its role.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "update"]
- apiGroups: [""]
  resources: ["pods/eviction"]
  verbs: ["create"]
# Kubernetes events about Rollouts and AnalysisRuns (events.k8s.io/v1; a repeated event is
# patched).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

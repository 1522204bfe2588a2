#!/usr/bin/env bash
# shellcheck disable=SC2016
set -euo pipefail
kubectl apply -f - <<'CHATPOSE_EOF'
apiVersion: jobset.x-k8s.io/v1alpha2
kind: JobSet
metadata:
  name: c13
  annotations:
    alpha.jobset.sigs.k8s.io/exclusive-topology: cloud.google.com/gke-nodepool
spec:
  failurePolicy:
    maxRestarts: 5
  replicatedJobs:
  - name: slice
    replicas: 2
    template:
      spec:
        parallelism: 64
        completions: 64
        completionMode: Indexed
        backoffLimit: 0
        template:
          spec:
            hostNetwork: true
            dnsPolicy: ClusterFirstWithHostNet
            restartPolicy: Never
            nodeSelector:
              cloud.google.com/gke-tpu-accelerator: tpu-v5-lite-podslice
              cloud.google.com/gke-tpu-topology: 16x16
            containers:
            - name: chatpose
              image: img:1
              command:
              - chatpose-train
              - --config
              - configs/llava15_13b.py:chatpose
              - --workdir
              - gs://bucket/c13
              - --config.mesh.fsdp=4
              - --config.mesh.dcn_data=2
              - --config.name=13b run's "main"
              env:
              - name: MEGASCALE_COORDINATOR_ADDRESS
                value: c13-slice-0-0.c13
              - name: MEGASCALE_NUM_SLICES
                value: '2'
              - name: MEGASCALE_SLICE_ID
                valueFrom:
                  fieldRef:
                    fieldPath: metadata.annotations['jobset.sigs.k8s.io/job-index']
              - name: MEGASCALE_PORT
                value: '8080'
              - name: CHATPOSE_INIT_TIMEOUT_S
                value: '1800'
              - name: CHATPOSE_HEARTBEAT_TIMEOUT_S
                value: '600'
              ports:
              - containerPort: 8471
              - containerPort: 8080
              securityContext:
                privileged: true
              resources:
                limits:
                  google.com/tpu: 4
CHATPOSE_EOF

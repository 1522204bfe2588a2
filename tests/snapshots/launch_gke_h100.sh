#!/usr/bin/env bash
# shellcheck disable=SC2016
set -euo pipefail
kubectl apply -f - <<'CHATPOSE_EOF'
apiVersion: jobset.x-k8s.io/v1alpha2
kind: JobSet
metadata:
  name: c13
  annotations: {}
spec:
  failurePolicy:
    maxRestarts: 3
  replicatedJobs:
  - name: workers
    replicas: 1
    template:
      spec:
        parallelism: 4
        completions: 4
        completionMode: Indexed
        backoffLimit: 0
        template:
          spec:
            restartPolicy: Never
            nodeSelector:
              cloud.google.com/gke-accelerator: nvidia-h100-80gb
            containers:
            - name: chatpose
              image: img:1
              command:
              - chatpose-train
              - --config
              - configs/llava15_13b.py:chatpose
              - --workdir
              - gs://bucket/c13
              - --config.mesh.fsdp=-1
              - --config.mesh.data=1
              - --config.name=13b run's "main"
              env:
              - name: JAX_COORDINATOR_ADDRESS
                value: c13-workers-0-0.c13
              - name: JAX_COORDINATOR_PORT
                value: '8482'
              - name: JAX_NUM_PROCESSES
                value: '4'
              - name: JAX_PROCESS_ID
                valueFrom:
                  fieldRef:
                    fieldPath: metadata.annotations['batch.kubernetes.io/job-completion-index']
              - name: XLA_PYTHON_CLIENT_MEM_FRACTION
                value: '0.90'
              - name: CUDA_DEVICE_MAX_CONNECTIONS
                value: '1'
              - name: NCCL_NVLS_ENABLE
                value: '1'
              - name: XLA_FLAGS
                value: --xla_gpu_enable_latency_hiding_scheduler=true --xla_gpu_enable_triton_gemm=false --xla_gpu_enable_highest_priority_async_stream=true --xla_gpu_all_reduce_combine_threshold_bytes=1073741824 --xla_gpu_all_gather_combine_threshold_bytes=134217728 --xla_gpu_reduce_scatter_combine_threshold_bytes=134217728
              - name: CHATPOSE_INIT_TIMEOUT_S
                value: '1800'
              - name: CHATPOSE_HEARTBEAT_TIMEOUT_S
                value: '600'
              ports:
              - containerPort: 8482
              resources:
                limits:
                  nvidia.com/gpu: 8
CHATPOSE_EOF

"""`gke`: a JobSet manifest applied with kubectl; the Docker image holds the code.

TPU: one replicated job with a replica per slice, a pod per VM, the exclusive-topology annotation,
TPU node selectors and chip limits, host network; multislice adds the MEGASCALE variables.
GPU: one pod per node; JAX_COORDINATOR_ADDRESS is the first pod, the rank its completion index.
"""

from __future__ import annotations

import yaml

from launch import render
from launch.render import Step
from launch.spec import LaunchSpec, SpecError, is_tpu, parse_gpu

JOBSET_API = "jobset.x-k8s.io/v1alpha2"
COORDINATOR_PORT = 8482
MEGASCALE_PORT = 8080
REPLICATED_JOB = "slice"
GPU_REPLICATED_JOB = "workers"


def _env(pairs) -> list[dict]:
    return [{"name": k, "value": v} for k, v in pairs]


def _field(name: str, path: str) -> dict:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _jobset(spec: LaunchSpec, rjob: str, replicas: int, pods: int, pod_spec: dict, annotations: dict) -> dict:
    return {
        "apiVersion": JOBSET_API,
        "kind": "JobSet",
        "metadata": {"name": spec.name, "annotations": annotations},
        "spec": {
            "failurePolicy": {"maxRestarts": spec.max_restarts},
            "replicatedJobs": [
                {
                    "name": rjob,
                    "replicas": replicas,
                    "template": {
                        "spec": {
                            "parallelism": pods,
                            "completions": pods,
                            "completionMode": "Indexed",
                            "backoffLimit": 0,
                            "template": {"spec": pod_spec},
                        }
                    },
                }
            ],
        },
    }


def tpu_manifest(spec: LaunchSpec) -> dict:
    tpu = spec.tpu
    env = _env(render.job_env(spec))
    if spec.num_slices > 1:
        env = [
            {"name": "MEGASCALE_COORDINATOR_ADDRESS", "value": f"{spec.name}-{REPLICATED_JOB}-0-0.{spec.name}"},
            {"name": "MEGASCALE_NUM_SLICES", "value": str(spec.num_slices)},
            _field("MEGASCALE_SLICE_ID", "metadata.annotations['jobset.sigs.k8s.io/job-index']"),
            {"name": "MEGASCALE_PORT", "value": str(MEGASCALE_PORT)},
        ] + env
    container = {
        "name": "chatpose",
        "image": spec.docker_image,
        "command": render.program_argv(spec),
        "env": env,
        "ports": [{"containerPort": 8471}, {"containerPort": MEGASCALE_PORT}],
        "securityContext": {"privileged": True},
        "resources": {"limits": {"google.com/tpu": tpu.chips_per_vm}},
    }
    pod = {
        "hostNetwork": True,
        "dnsPolicy": "ClusterFirstWithHostNet",
        "restartPolicy": "Never",
        "nodeSelector": {
            "cloud.google.com/gke-tpu-accelerator": tpu.gke_accelerator,
            "cloud.google.com/gke-tpu-topology": tpu.topology,
        },
        "containers": [container],
    }
    annotations = {"alpha.jobset.sigs.k8s.io/exclusive-topology": "cloud.google.com/gke-nodepool"}
    return _jobset(spec, REPLICATED_JOB, spec.num_slices, tpu.vms, pod, annotations)


def gpu_manifest(spec: LaunchSpec) -> dict:
    label, gpus = parse_gpu(spec.accelerator)
    platform = (
        ("JAX_COORDINATOR_ADDRESS", f"{spec.name}-{GPU_REPLICATED_JOB}-0-0.{spec.name}"),
        ("JAX_COORDINATOR_PORT", str(COORDINATOR_PORT)),
        ("JAX_NUM_PROCESSES", str(spec.num_nodes)),
    )
    env = _env(render.job_env(spec, platform + render.H100_ENV))
    env.insert(3, _field("JAX_PROCESS_ID", "metadata.annotations['batch.kubernetes.io/job-completion-index']"))
    container = {
        "name": "chatpose",
        "image": spec.docker_image,
        "command": render.program_argv(spec),
        "env": env,
        "ports": [{"containerPort": COORDINATOR_PORT}],
        "resources": {"limits": {"nvidia.com/gpu": gpus}},
    }
    pod = {
        "restartPolicy": "Never",
        "nodeSelector": {"cloud.google.com/gke-accelerator": label},
        "containers": [container],
    }
    return _jobset(spec, GPU_REPLICATED_JOB, 1, spec.num_nodes, pod, {})


def manifest(spec: LaunchSpec) -> str:
    if not spec.docker_image:
        raise SpecError("gke: --docker_image is required (it holds the code; its working directory the repo root)")
    doc = tpu_manifest(spec) if is_tpu(spec.accelerator) else gpu_manifest(spec)
    return yaml.safe_dump(doc, sort_keys=False, width=1000)


def plan(spec: LaunchSpec) -> list:
    return [Step(("kubectl", "apply", "-f", "-"), stdin=manifest(spec))]


def teardown(spec: LaunchSpec) -> list:
    return [Step(("kubectl", "delete", "jobset", spec.name))]

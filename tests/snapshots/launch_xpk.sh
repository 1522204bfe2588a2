#!/usr/bin/env bash
# shellcheck disable=SC2016
set -euo pipefail
xpk workload create --cluster k --workload c13 --docker-image img:1 --tpu-type v5litepod-256 --num-slices 2 --max-restarts 5 --command 'CHATPOSE_INIT_TIMEOUT_S=1800 CHATPOSE_HEARTBEAT_TIMEOUT_S=600 chatpose-train --config configs/llava15_13b.py:chatpose --workdir gs://bucket/c13 --config.mesh.fsdp=4 --config.mesh.dcn_data=2 '"'"'--config.name=13b run'"'"'"'"'"'"'"'"'s "main"'"'"''

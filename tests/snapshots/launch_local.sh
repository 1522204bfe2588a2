#!/usr/bin/env bash
# shellcheck disable=SC2016
set -euo pipefail
python3 launch/local.py --num_processes 2 --devices_per_process 2 -- env TF_CPP_MIN_LOG_LEVEL=2 chatpose-train --config configs/llava15_13b.py:chatpose --workdir gs://bucket/c13 --config.mesh.fsdp=-1 --config.mesh.data=1 '--config.name=13b run'"'"'s "main"'

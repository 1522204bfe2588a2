#!/usr/bin/env bash
# shellcheck disable=SC2016
set -euo pipefail
sbatch <<'CHATPOSE_EOF'
#!/bin/bash
#SBATCH --job-name=c13
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --exclusive
#SBATCH --requeue
#SBATCH --signal=TERM@300
#SBATCH --output=c13-%j.out
#SBATCH --partition=gpu
#SBATCH --time=2-00:00:00
set -euo pipefail
# The code, once per job on the batch host (a shared file system serves the other nodes).
if [ ! -d "$HOME/chatpose-jax"/.git ]; then git clone --quiet https://example.invalid/chatpose-jax.git "$HOME/chatpose-jax"; fi
cd "$HOME/chatpose-jax" || exit 1
git fetch --quiet origin
git checkout --quiet --detach 0123456789abcdef0123456789abcdef01234567
python3 -m pip install --quiet --upgrade pip && python3 -m pip install --quiet -e '.[gpu]'
export PATH="$HOME/.local/bin:$PATH"
mkdir -p logs
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.90
export CUDA_DEVICE_MAX_CONNECTIONS=1
export NCCL_NVLS_ENABLE=1
export XLA_FLAGS='--xla_gpu_enable_latency_hiding_scheduler=true --xla_gpu_enable_triton_gemm=false --xla_gpu_enable_highest_priority_async_stream=true --xla_gpu_all_reduce_combine_threshold_bytes=1073741824 --xla_gpu_all_gather_combine_threshold_bytes=134217728 --xla_gpu_reduce_scatter_combine_threshold_bytes=134217728'
export CHATPOSE_INIT_TIMEOUT_S=1800
export CHATPOSE_HEARTBEAT_TIMEOUT_S=600
srun --kill-on-bad-exit=1 --ntasks-per-node=8 -o logs/c13-%j-%t.txt chatpose-train --config configs/llava15_13b.py:chatpose --workdir gs://bucket/c13 --config.mesh.fsdp=-1 --config.mesh.data=1 '--config.name=13b run'"'"'s "main"'
CHATPOSE_EOF

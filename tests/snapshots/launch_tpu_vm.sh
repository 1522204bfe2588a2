#!/usr/bin/env bash
# shellcheck disable=SC2016
set -euo pipefail
gcloud compute tpus queued-resources create c13 --zone us-west4-a --accelerator-type v5litepod-16 --runtime-version v2-alpha-tpuv5-lite --node-count 2 --node-prefix c13 --spot
until [ "$(gcloud compute tpus queued-resources describe c13 --zone us-west4-a --format 'value(state.state)')" = ACTIVE ]; do sleep 30; done
gcloud compute tpus tpu-vm ssh c13-0 --zone us-west4-a --worker=all --command 'set -e
if [ ! -d "$HOME/chatpose-jax"/.git ]; then git clone --quiet https://example.invalid/chatpose-jax.git "$HOME/chatpose-jax"; fi
cd "$HOME/chatpose-jax" || exit 1
git fetch --quiet origin
git checkout --quiet --detach 0123456789abcdef0123456789abcdef01234567
python3 -m pip install --quiet --upgrade pip && python3 -m pip install --quiet -e '"'"'.[tpu]'"'"''
gcloud compute tpus tpu-vm ssh c13-1 --zone us-west4-a --worker=all --command 'set -e
if [ ! -d "$HOME/chatpose-jax"/.git ]; then git clone --quiet https://example.invalid/chatpose-jax.git "$HOME/chatpose-jax"; fi
cd "$HOME/chatpose-jax" || exit 1
git fetch --quiet origin
git checkout --quiet --detach 0123456789abcdef0123456789abcdef01234567
python3 -m pip install --quiet --upgrade pip && python3 -m pip install --quiet -e '"'"'.[tpu]'"'"''
gcloud compute tpus tpu-vm ssh c13-0 --zone us-west4-a --worker=all --command 'sudo fuser -k /dev/accel* /dev/vfio/* 2>/dev/null || true
sudo rm -f /tmp/libtpu_lockfile'
gcloud compute tpus tpu-vm ssh c13-1 --zone us-west4-a --worker=all --command 'sudo fuser -k /dev/accel* /dev/vfio/* 2>/dev/null || true
sudo rm -f /tmp/libtpu_lockfile'
mkdir -p logs/c13
pids=()
gcloud compute tpus tpu-vm ssh c13-0 --zone us-west4-a --worker=0 --command 'cd "$HOME/chatpose-jax" || exit 1
export PATH="$HOME/.local/bin:$PATH"
export CHATPOSE_PLATFORM=tpu
export CHATPOSE_INIT_TIMEOUT_S=1800
export CHATPOSE_HEARTBEAT_TIMEOUT_S=600
echo $$ > /tmp/chatpose-job.pid
exec chatpose-train --config configs/llava15_13b.py:chatpose --workdir gs://bucket/c13 --config.mesh.fsdp=4 --config.mesh.dcn_data=2 '"'"'--config.name=13b run'"'"'"'"'"'"'"'"'s "main"'"'"'' > logs/c13/slice-0-worker-0.log 2>&1 &
pids+=("$!")
gcloud compute tpus tpu-vm ssh c13-0 --zone us-west4-a --worker=1 --command 'cd "$HOME/chatpose-jax" || exit 1
export PATH="$HOME/.local/bin:$PATH"
export CHATPOSE_PLATFORM=tpu
export CHATPOSE_INIT_TIMEOUT_S=1800
export CHATPOSE_HEARTBEAT_TIMEOUT_S=600
echo $$ > /tmp/chatpose-job.pid
exec chatpose-train --config configs/llava15_13b.py:chatpose --workdir gs://bucket/c13 --config.mesh.fsdp=4 --config.mesh.dcn_data=2 '"'"'--config.name=13b run'"'"'"'"'"'"'"'"'s "main"'"'"'' > logs/c13/slice-0-worker-1.log 2>&1 &
pids+=("$!")
gcloud compute tpus tpu-vm ssh c13-0 --zone us-west4-a --worker=2 --command 'cd "$HOME/chatpose-jax" || exit 1
export PATH="$HOME/.local/bin:$PATH"
export CHATPOSE_PLATFORM=tpu
export CHATPOSE_INIT_TIMEOUT_S=1800
export CHATPOSE_HEARTBEAT_TIMEOUT_S=600
echo $$ > /tmp/chatpose-job.pid
exec chatpose-train --config configs/llava15_13b.py:chatpose --workdir gs://bucket/c13 --config.mesh.fsdp=4 --config.mesh.dcn_data=2 '"'"'--config.name=13b run'"'"'"'"'"'"'"'"'s "main"'"'"'' > logs/c13/slice-0-worker-2.log 2>&1 &
pids+=("$!")
gcloud compute tpus tpu-vm ssh c13-0 --zone us-west4-a --worker=3 --command 'cd "$HOME/chatpose-jax" || exit 1
export PATH="$HOME/.local/bin:$PATH"
export CHATPOSE_PLATFORM=tpu
export CHATPOSE_INIT_TIMEOUT_S=1800
export CHATPOSE_HEARTBEAT_TIMEOUT_S=600
echo $$ > /tmp/chatpose-job.pid
exec chatpose-train --config configs/llava15_13b.py:chatpose --workdir gs://bucket/c13 --config.mesh.fsdp=4 --config.mesh.dcn_data=2 '"'"'--config.name=13b run'"'"'"'"'"'"'"'"'s "main"'"'"'' > logs/c13/slice-0-worker-3.log 2>&1 &
pids+=("$!")
gcloud compute tpus tpu-vm ssh c13-1 --zone us-west4-a --worker=0 --command 'cd "$HOME/chatpose-jax" || exit 1
export PATH="$HOME/.local/bin:$PATH"
export CHATPOSE_PLATFORM=tpu
export CHATPOSE_INIT_TIMEOUT_S=1800
export CHATPOSE_HEARTBEAT_TIMEOUT_S=600
echo $$ > /tmp/chatpose-job.pid
exec chatpose-train --config configs/llava15_13b.py:chatpose --workdir gs://bucket/c13 --config.mesh.fsdp=4 --config.mesh.dcn_data=2 '"'"'--config.name=13b run'"'"'"'"'"'"'"'"'s "main"'"'"'' > logs/c13/slice-1-worker-0.log 2>&1 &
pids+=("$!")
gcloud compute tpus tpu-vm ssh c13-1 --zone us-west4-a --worker=1 --command 'cd "$HOME/chatpose-jax" || exit 1
export PATH="$HOME/.local/bin:$PATH"
export CHATPOSE_PLATFORM=tpu
export CHATPOSE_INIT_TIMEOUT_S=1800
export CHATPOSE_HEARTBEAT_TIMEOUT_S=600
echo $$ > /tmp/chatpose-job.pid
exec chatpose-train --config configs/llava15_13b.py:chatpose --workdir gs://bucket/c13 --config.mesh.fsdp=4 --config.mesh.dcn_data=2 '"'"'--config.name=13b run'"'"'"'"'"'"'"'"'s "main"'"'"'' > logs/c13/slice-1-worker-1.log 2>&1 &
pids+=("$!")
gcloud compute tpus tpu-vm ssh c13-1 --zone us-west4-a --worker=2 --command 'cd "$HOME/chatpose-jax" || exit 1
export PATH="$HOME/.local/bin:$PATH"
export CHATPOSE_PLATFORM=tpu
export CHATPOSE_INIT_TIMEOUT_S=1800
export CHATPOSE_HEARTBEAT_TIMEOUT_S=600
echo $$ > /tmp/chatpose-job.pid
exec chatpose-train --config configs/llava15_13b.py:chatpose --workdir gs://bucket/c13 --config.mesh.fsdp=4 --config.mesh.dcn_data=2 '"'"'--config.name=13b run'"'"'"'"'"'"'"'"'s "main"'"'"'' > logs/c13/slice-1-worker-2.log 2>&1 &
pids+=("$!")
gcloud compute tpus tpu-vm ssh c13-1 --zone us-west4-a --worker=3 --command 'cd "$HOME/chatpose-jax" || exit 1
export PATH="$HOME/.local/bin:$PATH"
export CHATPOSE_PLATFORM=tpu
export CHATPOSE_INIT_TIMEOUT_S=1800
export CHATPOSE_HEARTBEAT_TIMEOUT_S=600
echo $$ > /tmp/chatpose-job.pid
exec chatpose-train --config configs/llava15_13b.py:chatpose --workdir gs://bucket/c13 --config.mesh.fsdp=4 --config.mesh.dcn_data=2 '"'"'--config.name=13b run'"'"'"'"'"'"'"'"'s "main"'"'"'' > logs/c13/slice-1-worker-3.log 2>&1 &
pids+=("$!")
tail -f logs/c13/slice-0-worker-0.log &
tail_pid=$!
status=0
for _ in $(seq 8); do wait -n || { status=$?; break; }; done
if [ "$status" -ne 0 ]; then
  kill "${pids[@]}" 2>/dev/null || true
  gcloud compute tpus tpu-vm ssh c13-0 --zone us-west4-a --worker=all --command 'if [ -f /tmp/chatpose-job.pid ]; then kill -TERM "$(cat /tmp/chatpose-job.pid)" 2>/dev/null || true; fi' || true
  gcloud compute tpus tpu-vm ssh c13-1 --zone us-west4-a --worker=all --command 'if [ -f /tmp/chatpose-job.pid ]; then kill -TERM "$(cat /tmp/chatpose-job.pid)" 2>/dev/null || true; fi' || true
fi
kill "$tail_pid" 2>/dev/null || true
exit "$status"

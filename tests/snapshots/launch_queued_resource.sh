#!/usr/bin/env bash
# shellcheck disable=SC2016
set -euo pipefail
mkdir -p .launch/c13
cat > .launch/c13/startup.sh <<'CHATPOSE_EOF'
#!/bin/bash
# chatpose-jax job: runs on every worker at every boot; training resumes from the workdir.
set -uo pipefail
exec >> /var/log/chatpose-job.log 2>&1
(
set -e
if [ ! -d "/opt/chatpose-jax"/.git ]; then git clone --quiet https://example.invalid/chatpose-jax.git "/opt/chatpose-jax"; fi
cd "/opt/chatpose-jax" || exit 1
git fetch --quiet origin
git checkout --quiet --detach 0123456789abcdef0123456789abcdef01234567
python3 -m pip install --quiet --upgrade pip && python3 -m pip install --quiet -e '.[tpu]'
)
fuser -k /dev/accel* /dev/vfio/* 2>/dev/null || true
rm -f /tmp/libtpu_lockfile
cd "/opt/chatpose-jax" || exit 1
export CHATPOSE_PLATFORM=tpu
export CHATPOSE_INIT_TIMEOUT_S=1800
export CHATPOSE_HEARTBEAT_TIMEOUT_S=600
status=0
chatpose-train --config configs/llava15_13b.py:chatpose --workdir gs://bucket/c13 --config.mesh.fsdp=-1 --config.mesh.data=1 '--config.name=13b run'"'"'s "main"' || status=$?
gcloud storage cp /var/log/chatpose-job.log gs://bucket/c13/logs/"$(hostname).log" || true
exit "$status"
CHATPOSE_EOF
gcloud compute tpus queued-resources create c13 --zone us-east5-a --accelerator-type v5p-128 --runtime-version v2-alpha-tpuv5 --node-id c13 --reserved --metadata-from-file startup-script=.launch/c13/startup.sh
until [ "$(gcloud compute tpus queued-resources describe c13 --zone us-east5-a --format 'value(state.state)')" = ACTIVE ]; do sleep 30; done

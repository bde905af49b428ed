#!/bin/sh
# The node containers' entrypoint: runs `ipip-lab ARGS`. In the compose labs the lab's spec lives in a volume that
# every node mounts at /etc/ipip-lab, so that `kubectl apply` on one node changes the cluster of all. The volume
# starts empty: the first node up copies the seed spec (IPIP_LAB_SEED) into it, and the others find it there.
set -eu
spec=/etc/ipip-lab/cluster.yaml
if [ -n "${IPIP_LAB_SEED:-}" ] && [ ! -e "$spec" ]; then
  staging="$spec.$$.seed"
  cp "$IPIP_LAB_SEED" "$staging"
  # link(2) fails when another node got there first: one copy wins whole, and no reader sees half a file.
  ln "$staging" "$spec" 2>/dev/null || true
  rm -f "$staging"
fi
exec ipip-lab "$@"

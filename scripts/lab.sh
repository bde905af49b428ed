#!/usr/bin/env bash
# docker compose for one of the seed labs, from anywhere:
#
#   scripts/lab.sh cni-overview|networking COMPOSE-ARGS...
#   scripts/lab.sh networking up -d --wait
#   scripts/lab.sh networking exec networking-control-plane kubectl get nodes -o wide
#   scripts/lab.sh networking down -v
#
# Before `up` it checks that no other Docker network holds the lab's subnet: Docker would refuse with "Pool overlaps
# with other one on this address space" without saying which network, and 172.20.0.0/16 is a common one to be taken.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
case "${1:-}" in
  cni-overview) file=$root/docker-compose.yml subnet=10.0.0.0/24 project=ipip-lab ;;
  networking) file=$root/containers/networking/docker-compose.yml subnet=172.20.0.0/16 project=ipip-lab-networking ;;
  *)
    echo "usage: scripts/lab.sh cni-overview|networking COMPOSE-ARGS... (e.g. scripts/lab.sh networking up -d --wait)" >&2
    exit 2
    ;;
esac
shift

# A CIDR as "first last", both as 32-bit integers.
range() {
  local address=${1%/*} length=${1#*/} a b c d
  IFS=. read -r a b c d <<<"$address"
  local value=$(((a << 24) | (b << 16) | (c << 8) | d)) size=$((1 << (32 - length)))
  echo "$((value & ~(size - 1) & 0xffffffff)) $(((value & ~(size - 1) & 0xffffffff) + size - 1))"
}

if [[ "${1:-}" == up ]]; then
  read -r first last <<<"$(range "$subnet")"
  while read -r name subnets; do
    [[ "$name" == "${project}_"* ]] && continue
    for other in $subnets; do
      [[ "$other" == *.*/* ]] || continue
      read -r other_first other_last <<<"$(range "$other")"
      if ((other_first <= last && first <= other_last)); then
        echo "scripts/lab.sh: Docker network \"$name\" already uses $other, which overlaps this lab's $subnet:" \
          "remove it (docker network rm $name) or stop what uses it, then try again" >&2
        exit 1
      fi
    done
  done < <(docker network ls -q | xargs -r docker network inspect --format '{{.Name}} {{range .IPAM.Config}}{{.Subnet}} {{end}}')
fi
exec docker compose -f "$file" "$@"

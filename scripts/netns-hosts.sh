#!/usr/bin/env bash
# Two "hosts" on one machine for real multi-host MPI runs (run as root): network namespaces ctfgen-h0 and
# ctfgen-h1 joined by a veth pair (10.77.0.1 <-> 10.77.0.2), a hostfile naming both, and an rsh agent that starts
# Open MPI's daemon for 10.77.0.2 inside ctfgen-h1 (`ip netns exec`). mpirun runs inside ctfgen-h0; ranks talk TCP
# over the veth link only (btl tcp,self: no shared memory between the hosts).
#   scripts/netns-hosts.sh up | down        create / remove the namespaces (up is idempotent)
#   scripts/netns-hosts.sh mpirun ARGS…     mpirun across the two hosts, e.g. mpirun -np 2 node dist/…/x.js
#   scripts/netns-hosts.sh smoke            up, then the communicator test's collectives on one rank per host
#   scripts/netns-hosts.sh                  smoke, then down
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "netns-hosts: run as root (it creates network namespaces)" >&2; exit 1; }
command -v mpirun >/dev/null ||
  { echo "netns-hosts: mpirun not found: CTFGEN_MPI=1 bash scripts/setup.sh" >&2; exit 1; }

NS=(ctfgen-h0 ctfgen-h1); IP=(10.77.0.1 10.77.0.2); NET=10.77.0.0/24
STATE="${TMPDIR:-/tmp}/ctfgen-netns"   # the hostfile and the agent

up() {
  mkdir -p "$STATE"
  for i in 0 1; do
    ip netns list | grep -qw "${NS[$i]}" || ip netns add "${NS[$i]}"
    ip -n "${NS[$i]}" link set lo up
  done
  if ! ip -n "${NS[0]}" link show ctfgen-v0 >/dev/null 2>&1; then
    ip link add ctfgen-v0 type veth peer name ctfgen-v1
    ip link set ctfgen-v0 netns "${NS[0]}"
    ip link set ctfgen-v1 netns "${NS[1]}"
  fi
  for i in 0 1; do
    ip -n "${NS[$i]}" addr replace "${IP[$i]}/24" dev "ctfgen-v$i"
    ip -n "${NS[$i]}" link set "ctfgen-v$i" up
  done
  printf '%s slots=1\n%s slots=1\n' "${IP[0]}" "${IP[1]}" > "$STATE/hostfile"
  # Open MPI calls the agent as `AGENT HOST COMMAND…` (like ssh); the command is one shell line.
  cat > "$STATE/rsh-agent" <<AGENT
#!/usr/bin/env bash
host="\$1"; shift
case "\$host" in
  ${IP[0]}) ns=${NS[0]} ;;
  ${IP[1]}) ns=${NS[1]} ;;
  *) echo "netns rsh agent: unknown host \$host" >&2; exit 1 ;;
esac
exec ip netns exec "\$ns" /bin/sh -c "\$*"
AGENT
  chmod +x "$STATE/rsh-agent"
}

down() {
  for ns in "${NS[@]}"; do ip netns list | grep -qw "$ns" && ip netns delete "$ns"; done  # takes the veth pair along
  rm -rf "$STATE"
}

run_mpirun() {
  [[ -f $STATE/hostfile ]] || up
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ip netns exec "${NS[0]}" mpirun \
    --hostfile "$STATE/hostfile" --mca plm_rsh_agent "$STATE/rsh-agent" --bind-to none \
    --mca btl tcp,self --mca btl_tcp_if_include "$NET" --mca oob_tcp_if_include "$NET" \
    -x OPENBLAS_NUM_THREADS=1 -x PATH "$@"
}

smoke() {
  up
  [[ -f dist/test/parallel/worker.js && -f build/Release/ctfgen_mpi.node ]] ||
    { echo "netns-hosts: build first (CTFGEN_MPI=1 bash scripts/setup.sh)" >&2; exit 1; }
  out="$(run_mpirun -np 2 --map-by node node dist/test/parallel/worker.js collectives)"
  echo "$out"
  node -e '
    const o = JSON.parse(process.argv[1]);
    const ok = o.ranks.length === 2 &&
      o.ranks.every((r) => r.bigOk && r.kind === "mpi" && r.broadcast[2] === 2 ** 30) &&
      JSON.stringify(o.gathered) === "[[10],[11,11,11,11]]";
    if (!ok) { console.error("netns-hosts: the collectives across the two hosts gave wrong results"); process.exit(1); }
    console.error("netns-hosts: allreduce, broadcast and gather across the two hosts are correct");' "$out"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  mpirun) shift; run_mpirun "$@" ;;
  smoke) smoke ;;
  '') smoke; down ;;
  *) echo "usage: scripts/netns-hosts.sh [up|down|smoke|mpirun ARGS…]" >&2; exit 2 ;;
esac

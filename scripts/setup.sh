#!/usr/bin/env bash
# Installs what ctfgen needs on this machine and builds it: Debian packages (OpenBLAS always; PyTorch
# with CTFGEN_TORCH=1, for the oracle and the benchmark peers; Chromium with CTFGEN_BROWSER=1, for the web
# demo's browser test; Open MPI with CTFGEN_MPI=1, for `mpirun -np N ctfgen …`), npm dependencies, the native
# addon (and the MPI addon where Open MPI is installed), the TypeScript and the web page. Each step is skipped when
# already done. Nothing is fetched outside npm and Debian.
set -euo pipefail
cd "$(dirname "$0")/.."
# One build at a time per checkout (tests and benchmarks may start in parallel).
exec 9>"${TMPDIR:-/tmp}/ctfgen-setup-$(pwd | cksum | cut -d' ' -f1).lock"
flock 9

need=(libopenblas-dev pkg-config g++ make python3 dataset-fashion-mnist)
if [[ "${CTFGEN_TORCH:-0}" == 1 ]]; then need+=(python3-torch python3-numpy python3-scipy); fi
if [[ "${CTFGEN_BROWSER:-0}" == 1 ]]; then need+=(chromium); fi
if [[ "${CTFGEN_MPI:-0}" == 1 ]]; then need+=(openmpi-bin libopenmpi-dev); fi
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]]; then
    echo "ctfgen setup: installing Debian packages: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "ctfgen setup: missing Debian packages: ${missing[*]}" >&2
    echo "  install them as root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

if [[ ! -d node_modules/node-addon-api || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "ctfgen setup: npm ci" >&2
  # npm ci also builds the addon (the package's install script): its compiler output goes to a log unless it fails.
  npm ci --no-audit --no-fund >npm-ci.log 2>&1 || { tail -40 npm-ci.log >&2; exit 1; }
fi

addon=build/Release/ctfgen_native.node
# The MPI addon is built beside it only where Open MPI's development files are (binding.gyp's condition).
mpi=0; pkg-config --exists ompi-c && mpi=1
if [[ ! -f $addon || -n "$(find native binding.gyp -newer "$addon" 2>/dev/null | head -1)" ||
      $mpi == 1 && ! -f build/Release/ctfgen_mpi.node ]]; then
  echo "ctfgen setup: building the native addon" >&2
  # Build against this machine's Node headers (never downloaded): <prefix>/include/node.
  nodedir="$(dirname "$(dirname "$(command -v node)")")"
  [[ -f "$nodedir/include/node/node_api.h" ]] || \
    { echo "ctfgen setup: Node headers not found under $nodedir/include/node" >&2; exit 1; }
  # Configure only when the source list or binding.gyp changed; then build incrementally, so a failed
  # compile leaves the previous addon in place instead of an empty build/.
  sources="$(ls native/*.cc native/mpi/*.cc | sort; echo "mpi $mpi")"
  built_for=$(cat build/sources.txt 2>/dev/null || true)
  if [[ ! -f build/Makefile || binding.gyp -nt build/Makefile || "$sources" != "$built_for" ]]; then
    node_modules/.bin/node-gyp configure \
      --nodedir="$nodedir" >build-native.log 2>&1 || { tail -40 build-native.log >&2; exit 1; }
    echo "$sources" > build/sources.txt
  fi
  node_modules/.bin/node-gyp build \
    --nodedir="$nodedir" >build-native.log 2>&1 || { tail -40 build-native.log >&2; exit 1; }
  touch "$addon" $( ((mpi)) && echo build/Release/ctfgen_mpi.node)
fi

echo "ctfgen setup: compiling TypeScript" >&2
node_modules/.bin/tsc -p tsconfig.json
node_modules/.bin/tsc -p web/tsconfig.json

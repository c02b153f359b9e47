#!/usr/bin/env bash
# The GPU figures of BENCHMARKS.md in one call on a lent machine with an NVIDIA GPU (the
# `device` tool: no Rust, no network, PyTorch with CUDA installed, about 15 minutes in all).
#
# Here, before the call (the release binary runs there unchanged):
#   cargo build --release --bin sparse-playground
#   mkdir -p .device && cp target/release/sparse-playground .device/
#   Vulkan's loader, once (see the device tool's README): the .deb files in .gl/
# The call: command `bash bench/device.sh`, carry [".device", ".gl"], timeout_s 600.
# Everything lands in $OUT: nvidia-smi.txt, bench.txt/.json (the GPU column beside PyTorch's
# CUDA peer, bench/gpu_reference.py), unknown-zd.txt/.json (the paper's whole unknown-Z&D
# preset on the GPU), scaling.txt/.json (the paper's scaling sweep on the GPU). Each step has a
# time limit, so that the call ends inside the device's per-call limit with what it has.
set -u
out=${OUT:-/tmp/device-out}
mkdir -p "$out"
bin=.device/sparse-playground
if [ ! -x "$bin" ]; then
  echo "no $bin: build it and carry .device (see the top of this script)" >&2
  exit 2
fi
if [ -d .gl ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f "$icd" ] && [ -z "${VK_DRIVER_FILES:-}" ]; then
  export VK_DRIVER_FILES=$icd
fi
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
python3 -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0))' \
  >> "$out/nvidia-smi.txt" 2>&1

step() {
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  timeout "$limit" "$@" > "$out/$name.txt" 2>&1
  local rc=$?
  echo "$name: exit $rc after $((SECONDS - start)) s" | tee -a "$out/steps.txt"
}

# The GPU column (stacks of paper-size SAEs and every fused method, the large sizes, trusted
# against checked modules) with PyTorch's peer beside it.
step bench 300 "$bin" bench --size none --gpu --gpu-peer --no-peer --no-browser --no-page \
  --min-secs 0.5 --out "$out/bench.json"
# Targets: the unknown-Z&D preset at the paper's length in at most 10 s, the scaling sweep in
# at most 60 s.
step unknown-zd 90 "$bin" run --preset unknown-zd --backend gpu --quiet --out "$out/unknown-zd.json"
step scaling 150 "$bin" sweep --preset scaling --backend gpu --quiet --out "$out/scaling.json"
tail -n 40 "$out/bench.txt"
cat "$out/steps.txt"

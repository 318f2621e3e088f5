#!/bin/bash
# Real-GPU check of the WebGPU kernels: the f64-reference correctness cases with and without `shader-f16`, then
# bench:kernels at 1K–128K context with achieved GB/s against the card's bandwidth. Runs from the repo root on a bare
# NVIDIA machine; everything travels in .gpu/ (node scripts/pack-gpu-check.mjs) and .gl/ (Debian's libvulkan1 .deb,
# `apt-get download libvulkan1`), since dawn.node loads libvulkan.so.1 and the NVIDIA Vulkan ICD at start.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
G=$PWD/.gpu
[ -f $G/node.xz ] || { echo 'run node scripts/pack-gpu-check.mjs first'; exit 2; }
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
nvidia-smi --query-gpu=name,memory.total,clocks.max.memory,driver_version --format=csv | tee $OUT/gpu.txt
python3 - <<'PY'
import lzma, shutil, os
for src, dst in [('.gpu/node.xz','/tmp/node'),('.gpu/dawn.node.xz','.gpu/node_modules/webgpu/dist/linux-x64/dawn.node'),('.gpu/ort-wasm-simd-threaded.asyncify.wasm.xz','.gpu/ort/ort-wasm-simd-threaded.asyncify.wasm')]:
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with lzma.open(src) as f, open(dst,'wb') as o: shutil.copyfileobj(f,o)
os.chmod('/tmp/node', 0o755)
PY
ICD=$(ls /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json 2>/dev/null | head -1)
echo "ICD=$ICD"; [ -n "$ICD" ] && export VK_DRIVER_FILES=$ICD VK_ICD_FILENAMES=$ICD
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
/tmp/node --version
PEAK=4800; grep -q H100 $OUT/gpu.txt && PEAK=3350
cd $G
for f16 in 1 0; do
  MLA_SHADER_F16=$f16 timeout 150 /tmp/node kernels/node-webgpu-runner.mjs > $OUT/correct-f16-$f16.json 2> $OUT/correct-f16-$f16.err
  echo "correctness f16=$f16 rc=$?"; head -c 400 $OUT/correct-f16-$f16.json; echo
done
timeout 240 /tmp/node bench/kernels-node-runner.mjs --json --contexts ${CONTEXTS:-1024,4096,16384,65536,131072} --batch 50 --min-ms 800 --max-iters 30 --peak-gbs $PEAK --ort-dir $G/ort > $OUT/bench.json 2> $OUT/bench.err
echo "bench rc=$?"; head -c 1500 $OUT/bench.json; echo; tail -5 $OUT/bench.err

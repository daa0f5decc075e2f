#!/usr/bin/env bash
# The GPU half of benchmarks/gpu_cpu_crosscheck.py, as one command for a lent GPU machine (minutes of it):
#   1. the carried wheels (.whl: imagecodecs, constriction, pydicom, which its image lacks) into /tmp/site;
#   2. every packed test plane (.gpudata/test_planes, written by `gpu_cpu_crosscheck.py pack`) encoded
#      on CUDA and decoded on the CPU, fast, latent and slow methods, re-encoded on the CPU too;
#   3. the bundled examples through the CLI: `encode --device cuda`, `decode --device cpu`, compared with
#      the inputs (DICOM byte for byte, PNG pixel for pixel), and the .mlc hashes printed (to compare
#      with a CPU encode elsewhere).
# Usage: bash benchmarks/gpu_crosscheck.sh OUT_DIR [DEADLINE_S]
set -euo pipefail
out=${1:?usage: gpu_crosscheck.sh OUT_DIR [DEADLINE_S]}
deadline=${2:-300}
device=${ENCODE_DEVICE:-cuda}  # ENCODE_DEVICE=cpu: a dry run on a machine without a GPU
planes=${PLANES:-.gpudata/test_planes}
cd "$(dirname "$0")/.."
wheels=${WHEELS-.whl}  # WHEELS= : use what is installed
if [ -n "$wheels" ] && [ -d "$wheels" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "$wheels"/*.whl
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD:$PWD/benchmarks" OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
python3 -c "import torch, numpy, numba; print('torch', torch.__version__, 'numpy', numpy.__version__, 'numba',
numba.__version__, 'cuda:', torch.cuda.is_available() and torch.cuda.get_device_name(0))"

status=0
python3 benchmarks/gpu_cpu_crosscheck.py run --planes "$planes" --encode-device "$device" \
    --decode-device cpu --modes fast,latent,slow --reencode --deadline-s "$deadline" \
    --out "$out/gpu_cpu_crosscheck_run.json" 2>&1 | grep -v -e iCCP -e ': ok $' || status=1

# DICOM comes back byte for byte; a PNG as the same pixels (its zlib stream is not kept)
same_pixels='import sys, numpy as np; from medcodec.io.source import load; a, b = (load(p) for p in sys.argv[1:])
sys.exit(not (len(a.planes) == len(b.planes) and all(map(np.array_equal, a.planes, b.planes))))'
work=$(mktemp -d)
for mode in fast slow latent; do
    (python3 -m medcodec encode -q --mode "$mode" --device "$device" --out-dir "$work/$mode" medcodec/data/examples
     python3 -m medcodec decode -q --device cpu --out-dir "$work/$mode.decoded" "$work/$mode") &
done
wait
for mode in fast slow latent; do
    for mlc in $(cd "$work/$mode" && find . -name '*.mlc' | sort); do
        original=medcodec/data/examples/${mlc%.mlc} decoded=$work/$mode.decoded/${mlc%.mlc}
        case $original in
            *.dcm) cmp -s "$original" "$decoded" && same="identical bytes" || same=DIFFERENT;;
            *) python3 -c "$same_pixels" "$original" "$decoded" && same="identical pixels" || same=DIFFERENT;;
        esac
        [ "$same" = DIFFERENT ] && status=1
        echo "cli $mode $(sha256sum < "$work/$mode/$mlc" | cut -c1-16) ${mlc#./} decoded on cpu: $same"
    done
done
exit $status

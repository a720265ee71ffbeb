#!/usr/bin/env bash
# Continue the shipped ANP's training on a lent GPU in one device command
# (pipelines/training/anp_continue.yaml; docs/training.md, "Runbook: continuing the ANP on a lent GPU machine").
#
# 1. Here, on the CPU machine (it has the radar data and the package registries):
#      bash benchmarks/gpu_continue.sh prepare
#    writes .gpu/wheels/ (the Python packages the GPU image lacks, built for its Python 3.12, at
#    the versions installed in .venv) and .gpu/pack.npz (the config's training frames and
#    validation tasks), and lists .gpu/ in .git/info/exclude so that it travels only when carried.
#    (WHEEL_PYTHON=3.11 fetches wheels for another Python, to rehearse step 2 on a CPU machine.)
# 2. One device call, carrying .gpu (and runs/anp_continue when resuming a run cut off earlier):
#      bash benchmarks/gpu_continue.sh device SECONDS
#    installs the wheels, runs tests/test_cuda.py, trains for at most SECONDS (a later call
#    resumes from the last checkpoint) and leaves $OUT/anp_continue_run.tar (the run folder),
#    $OUT/test_cuda.log and $OUT/train.log.
# 3. Here again: unpack the tar into runs/, then
#      weatherunc refit-head pipelines/training/anp_continue.yaml runs/anp_continue/best.safetensors OUT.safetensors
#    and run the benchmarks on OUT.safetensors before shipping it.
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG=pipelines/training/anp_continue.yaml
# Imported by `weatherunc train --packed` and tests/test_cuda.py, and missing from the GPU image
# (/work/.library/device/KINDS.md lists what it holds).
MISSING=(annotated-types cftime dask distributed h5netcdf importlib-metadata lazy-importer locket pydantic pydantic-core pyproj tblib tornado typing-inspection zict)

prepare() {
    local python=.venv/bin/python
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
    mkdir -p .gpu/wheels
    local pins=()
    for name in "${MISSING[@]}"; do
        local version
        version=$("$python" -c "import sys; from importlib.metadata import version; print(version(sys.argv[1]))" "$name")
        pins+=("$name==$version")
    done
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version "${WHEEL_PYTHON:-3.12}" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .gpu/wheels "${pins[@]}"
    .venv/bin/weatherunc pack "$CONFIG" .gpu/pack.npz
    du -sh .gpu
}

device() {
    local seconds=${1:?device SECONDS: the training time limit}
    local out=${OUT:?OUT: the folder whose files come back}
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/wheels/*.whl
    export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1
    { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi"; } | tee "$out/train.log"
    python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$out/test_cuda.log" || true
    local status=0
    timeout --signal=KILL "$seconds" python3 -m weatherunc.cli train "$CONFIG" --packed .gpu/pack.npz --sampling-workers 8 >>"$out/train.log" 2>&1 || status=$?
    echo "train exit status $status (137: stopped at the time limit; resume with another call)" | tee -a "$out/train.log"
    if [ -d runs/anp_continue ]; then tar -cf "$out/anp_continue_run.tar" -C runs anp_continue; fi
    tail -c 3000 "$out/train.log"
}

case "${1:-}" in
    prepare) prepare ;;
    device) device "${2:-}" ;;
    *) echo "usage: $0 prepare | device SECONDS" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Train the members of the ANP deep ensemble (pipelines/training/anp_ensemble.yaml) one after
# another, each resuming where it stopped, and copy each member's last checkpoint (weights and
# sidecar) to benchmarks/checkpoints/anp_ensemble/member-N.*, with its history (only the histories
# are committed).
#   bash benchmarks/train_anp_ensemble.sh [FIRST_SEED] [LAST_SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
first=${1:-1}
last=${2:-5}
python=${PYTHON:-.venv/bin/python}
export WEATHERUNC_DATA_DIR=${WEATHERUNC_DATA_DIR:-../shared/data}
config=pipelines/training/anp_ensemble.yaml
steps=$(printf '%08d' "$("$python" -c "import yaml, sys; print(yaml.safe_load(open(sys.argv[1]))['steps'])" "$config")")
root=runs/anp_ensemble
target=benchmarks/checkpoints/anp_ensemble
mkdir -p "$root" "$target"
for seed in $(seq "$first" "$last"); do
    member=$root/member-$seed
    "$python" -m weatherunc.cli train "$config" --seed "$seed" --output-dir "$member"
    cp "$member/last-$steps.safetensors" "$target/member-$seed.safetensors"
    cp "$member/last-$steps.json" "$target/member-$seed.json"
    cp "$member/history.json" "$target/member-$seed.history.json"
done

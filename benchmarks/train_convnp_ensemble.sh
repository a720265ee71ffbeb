#!/usr/bin/env bash
# Train the members of a GP-prior ConvNP deep ensemble (CONFIG, by default
# pipelines/training/convnp_gp_ensemble.yaml) one after another, in runs/NAME/member-SEED (NAME: the
# config file's name); each run resumes where it stopped. The members share one frame cache and one
# prior bank: a member folder without them gets hard links to those of the first folder that has
# them (the training loop checks their fingerprints and rebuilds them when they do not match).
#   bash benchmarks/train_convnp_ensemble.sh [FIRST_SEED] [LAST_SEED] [CONFIG]
set -euo pipefail
cd "$(dirname "$0")/.."
first=${1:-1}
last=${2:-5}
config=${3:-pipelines/training/convnp_gp_ensemble.yaml}
python=${PYTHON:-.venv/bin/python}
export WEATHERUNC_DATA_DIR=${WEATHERUNC_DATA_DIR:-../shared/data}
root=runs/$(basename "$config" .yaml)
mkdir -p "$root"
source_folder=""
for candidate in "$root"/member-* runs/convnp_gp_ensemble/member-* runs/convnp_gp_crps; do
    if [[ -f "$candidate/frames.npz" && -f "$candidate/prior_bank/bank.json" ]]; then
        source_folder=$candidate
        break
    fi
done
for seed in $(seq "$first" "$last"); do
    member=$root/member-$seed
    mkdir -p "$member"
    if [[ -n "$source_folder" && "$source_folder" != "$member" ]]; then
        [[ -f "$member/frames.npz" ]] || ln "$source_folder/frames.npz" "$member/frames.npz"
        [[ -d "$member/prior_bank" ]] || cp -al "$source_folder/prior_bank" "$member/prior_bank"
    fi
    "$python" -m weatherunc.cli train "$config" --seed "$seed" \
        --output-dir "$member"
done

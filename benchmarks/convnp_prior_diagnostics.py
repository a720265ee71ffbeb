"""Benchmark: do the GP-prior ConvNP's corrections help on held-out training-like tasks and validation tasks?

For a fine-tuning run of the ConvNP with a GP prior (default ``runs/convnp_gp_crps``, from
``pipelines/training/convnp_gp_crps.yaml``), compares the model the run starts from (step 0: the
prior alone) with the run's snapshots on

- ``heldout_bank``: tasks drawn like the training tasks, from the training frames, with another
  seed (a bank of ``--tasks`` tasks built in the run folder's ``heldout_bank/``): the censored
  likelihood and the CRPS over the task's mean rate (the two training losses), no gradient;
- ``validation``: the run's validation tasks (validation frames only), with the prior's cheap GP
  and with a fuller GP as prior (``kernel: auto``, censored contexts).

Test frames are not used. Writes ``benchmarks/results/convnp_prior_diagnostics.json`` and ``.md``.

    WEATHERUNC_DATA_DIR=../shared/data .venv/bin/python benchmarks/convnp_prior_diagnostics.py [--run DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, require_data_dir, result_header, write_result

from weatherunc.models.convnp.interpolator import ConvNPInterpolator, load_convnp
from weatherunc.models.convnp.model import ConvNP, censored_loss, rate_crps_loss
from weatherunc.training.convnp_config import ConvNPTrainingConfig
from weatherunc.training.convnp_loop import initial_convnp, training_frames
from weatherunc.training.prior_bank import PriorBank, build_prior_bank
from weatherunc.training.validation import mean_scores, validation_tasks

HELDOUT_SEED = 99
BATCHES, BATCH_SIZE = 8, 8
FULLER_PRIOR = {"kernel": "auto", "censored_contexts": True}


def bank_losses(model: ConvNP, bank: PriorBank) -> dict[str, float]:
    """Mean censored NLL and CRPS over the mean rate on ``BATCHES`` fixed batches of ``bank``."""
    rng = np.random.default_rng(123)
    nll, crps = [], []
    with torch.no_grad():
        for _ in range(BATCHES):
            batch = bank.sample(model.config, BATCH_SIZE, rng)
            output = model(batch.observed, batch.values, batch.positions, batch.prior, batch.target_prior)
            losses = censored_loss(
                output,
                batch.target_values,
                batch.target_bins,
                batch.weights,
                dry_bound=model.config.dry_bound,
                bin_weight=0.0,
            )
            nll.append(losses["nll"].item())
            crps.append(rate_crps_loss(output, batch.target_values, batch.weights, model.config).item())
    return {"nll": round(float(np.mean(nll)), 4), "crps_over_mean_rate": round(float(np.mean(crps)), 4)}


def with_prior(model: ConvNP, prior_gp: dict) -> ConvNP:
    """``model``'s weights with another prior GP."""
    other = ConvNP(dataclasses.replace(model.config, prior_gp=prior_gp))
    other.load_state_dict(model.state_dict())
    return other.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/convnp_gp_crps"))
    parser.add_argument("--tasks", type=int, default=50)
    arguments = parser.parse_args()
    require_data_dir()
    torch.set_num_threads(2)
    start = time.perf_counter()
    snapshots = sorted(arguments.run.glob("snapshot-*.safetensors"))
    if not snapshots:
        sys.exit(f"{arguments.run} holds no snapshot-*.safetensors")
    sidecar_model, sidecar = load_convnp(snapshots[-1])
    config = ConvNPTrainingConfig(**sidecar["metadata"]["training_config"])
    models = {0: initial_convnp(config, None).eval()}
    for path in snapshots:
        model, info = load_convnp(path)
        models[int(info["metadata"]["step"])] = model.eval()
    folder = build_prior_bank(
        arguments.run / "heldout_bank",
        training_frames(config),
        config.frames_fingerprint(),
        models[0].config,
        config.sampling,
        count=arguments.tasks,
        seed=HELDOUT_SEED,
    )
    heldout = PriorBank.load(folder, models[0].config)
    tasks = validation_tasks(config.validation, config.validation_tasks, seed=config.seed + 1)
    rows = []
    for step, model in models.items():
        row = {"step": step, "heldout_bank": bank_losses(model, heldout)}
        for label, prior in (
            ("validation", model.config.prior_gp),
            ("validation_fuller_prior", FULLER_PRIOR),
        ):
            interpolator = ConvNPInterpolator(model=with_prior(model, prior))
            scores = mean_scores([interpolator.predict(task) for task in tasks], tasks)
            row[label] = {name: round(value, 4) for name, value in scores.items()}
        rows.append(row)
        print(row, flush=True)
    lines = [
        "| step | held-out bank nll | held-out bank crps/mean rate | validation crps | "
        "validation crps, fuller prior |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['step']} | {row['heldout_bank']['nll']} | "
            f"{row['heldout_bank']['crps_over_mean_rate']} | {row['validation']['crps']} | "
            f"{row['validation_fuller_prior']['crps']} |"
        )
    result = {
        **result_header(__doc__),
        "wall_s": round(time.perf_counter() - start, 1),
        "run": str(arguments.run),
        "heldout_seed": HELDOUT_SEED,
        "heldout_tasks": arguments.tasks,
        "fuller_prior": FULLER_PRIOR,
        "rows": rows,
    }
    path = write_result("convnp_prior_diagnostics.json", result)
    (RESULTS / "convnp_prior_diagnostics.md").write_text(
        f"{result['benchmark']}\n\n{result['machine']['date']}, run {result['run']}\n\n"
        + "\n".join(lines)
        + "\n"
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

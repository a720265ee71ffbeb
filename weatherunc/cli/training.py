"""Training commands: ``train``, ``refit-head``, ``swag``, ``bbb`` and ``pack``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from weatherunc.cli.shared import CatalogOption, DataDirOption, fail, load_catalog

if TYPE_CHECKING:
    from weatherunc.training.config import TrainingConfig
    from weatherunc.training.convnp_config import ConvNPTrainingConfig


def train(
    config: Annotated[Path, typer.Argument(help="Training config YAML (see pipelines/training/).")],
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", help="Run folder (default: the config's output_dir).")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Override the number of training steps.")] = None,
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda or cuda:N (default: CUDA when available).")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Override the seed (initialisation and task draws), e.g. for ensemble members."),
    ] = None,
    restart: Annotated[
        bool, typer.Option(help="Start over even if the run folder holds a run of another config.")
    ] = False,
    packed: Annotated[
        Path | None,
        typer.Option(
            help="Training data packed by `weatherunc pack` for this config (read instead of the catalog)."
        ),
    ] = None,
    sampling_workers: Annotated[
        int | None,
        typer.Option(
            help=(
                "Processes drawing training batches ahead of the step (default: the config's, 0 = none); "
                "the result does not depend on it."
            )
        ),
    ] = None,
    initialise_from: Annotated[
        Path | None,
        typer.Option(
            "--initialise-from",
            help=(
                "Fine-tune: start a fresh run from this checkpoint's weights (its architecture must be the "
                "config's; default: the config's initialise_from)."
            ),
        ),
    ] = None,
    catalog: CatalogOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Train a neural process (the convolutional one when the config says `architecture: convnp`); resumes
    from the run folder's last checkpoint."""
    from weatherunc.checkpoints import CheckpointError
    from weatherunc.errors import InputDataError
    from weatherunc.training.config import load_training_config
    from weatherunc.training.convnp_config import is_convnp_config, load_convnp_training_config
    from weatherunc.training.convnp_loop import train_convnp
    from weatherunc.training.loop import train as run_training

    try:
        if not config.is_file():
            raise ValueError(f"{config}: no such training config file")
        open_options = {"catalog": load_catalog(catalog, data_dir)}
        if is_convnp_config(config):
            if packed is not None or sampling_workers is not None:
                raise ValueError(
                    "--packed and --sampling-workers apply to the attentive and plain neural processes, "
                    "not to architecture: convnp"
                )
            result = train_convnp(
                load_convnp_training_config(
                    config,
                    output_dir=output_dir,
                    steps=steps,
                    device=device,
                    seed=seed,
                    initialise_from=initialise_from,
                ),
                restart=restart,
                open_options=open_options,
            )
        else:
            training_config = load_training_config(
                config,
                output_dir=output_dir,
                steps=steps,
                device=device,
                seed=seed,
                sampling_workers=sampling_workers,
                initialise_from=initialise_from,
            )
            result = run_training(training_config, restart=restart, packed=packed, open_options=open_options)
    except (ValueError, CheckpointError, InputDataError, KeyError) as error:
        fail(error)
    typer.echo(
        json.dumps(
            {
                "best_checkpoint": str(result.best_checkpoint),
                "steps": result.steps,
                "stopped_early": result.stopped_early,
                "seconds": round(result.seconds, 1),
                "best_validation": result.best_scores,
            },
            indent=2,
        )
    )


def refit_head(
    config: Annotated[Path, typer.Argument(help="The training config the checkpoint was trained with.")],
    checkpoint: Annotated[
        Path, typer.Argument(help="Trained neural process (.safetensors with its sidecar).")
    ],
    output: Annotated[Path, typer.Argument(help="Where to write the refitted checkpoint (not the input).")],
    batches: Annotated[
        int,
        typer.Option(
            help=(
                "Training batches drawn for the refit (300 x batch 32 x 64 targets x 4 draws of 128 "
                "features: about 0.6 GB)."
            )
        ),
    ] = 300,
    seed: Annotated[int, typer.Option(help="Seed of the refit's task stream.")] = 1,
    packed: Annotated[
        Path | None,
        typer.Option(
            help="Training data packed by `weatherunc pack` for this config (read instead of the catalog)."
        ),
    ] = None,
    gaussian: Annotated[
        bool,
        typer.Option(
            help=(
                "Also refit the Gaussian rows (mean, std) to the likelihood of the published Gaussian; "
                "changes the Gaussian predictions."
            )
        ),
    ] = False,
) -> None:
    """Refit a neural process's bin head in prediction mode (prior latents, no dropout) on training tasks;
    the Gaussian outputs are kept unless --gaussian."""
    from weatherunc.checkpoints import CheckpointError
    from weatherunc.errors import InputDataError
    from weatherunc.training.config import load_training_config
    from weatherunc.training.head_refit import HeadRefitOptions, refit_checkpoint

    try:
        report = refit_checkpoint(
            load_training_config(config),
            checkpoint,
            output,
            HeadRefitOptions(batches=batches, seed=seed, gaussian=gaussian),
            packed=packed,
        )
    except (ValueError, CheckpointError, InputDataError, KeyError) as error:
        fail(error)
    typer.echo(json.dumps({"checkpoint": str(output), **report}, indent=2))


#: The arguments and options that ``swag`` and ``bbb`` share.
FineTuneConfigArgument = Annotated[
    Path, typer.Argument(help="The training config the checkpoint was trained with (ConvNP or ANP/CNP).")
]
FineTuneCheckpointArgument = Annotated[
    Path, typer.Argument(help="Trained ConvNP, ANP or CNP (.safetensors with its sidecar).")
]
FineTuneOutputDirOption = Annotated[
    Path | None,
    typer.Option(
        "--output-dir", help="ConvNP: run folder of the training frames' cache (default: the config's)."
    ),
]
FineTuneThreadsOption = Annotated[int | None, typer.Option(help="torch threads (default: the config's).")]


def _fine_tune_config(
    config: Path, output_dir: Path | None, threads: int | None
) -> ConvNPTrainingConfig | TrainingConfig:
    """The training config of a SWAG or Bayes by Backprop fine-tune: a ConvNP's (with ``output_dir``,
    its frames cache, and ``threads`` over its own) or an ANP's/CNP's (``threads`` sets torch's, as
    its config has none; ``output_dir`` is refused)."""
    import torch

    from weatherunc.training.config import load_training_config
    from weatherunc.training.convnp_config import is_convnp_config, load_convnp_training_config

    if is_convnp_config(config):
        return load_convnp_training_config(config, output_dir=output_dir, threads=threads)
    if output_dir is not None:
        raise ValueError(
            f"--output-dir: {config} is an ANP's or CNP's config, whose fine-tune keeps no frames cache"
        )
    if threads:
        torch.set_num_threads(threads)
    return load_training_config(config)


def swag(
    config: FineTuneConfigArgument,
    checkpoint: FineTuneCheckpointArgument,
    output: Annotated[Path, typer.Argument(help="Where to write the SWAG moments (.safetensors).")],
    steps: Annotated[int, typer.Option(help="Training steps at a constant learning rate.")] = 300,
    every: Annotated[int, typer.Option(help="Collect the weights every this many steps.")] = 10,
    burn_in: Annotated[int, typer.Option(help="Steps before the first collection.")] = 50,
    rank: Annotated[int, typer.Option(help="Deviations kept for the low-rank part.")] = 20,
    learning_rate: Annotated[float, typer.Option(help="The constant learning rate (Adam).")] = 1e-4,
    output_dir: FineTuneOutputDirOption = None,
    threads: FineTuneThreadsOption = None,
) -> None:
    """Collect SWAG moments of a ConvNP's decoder and last U-Net block, or of an ANP's or CNP's
    decoder; use them with get_model("convnp", swag=OUTPUT, weight_samples=N) (or "anp", "cnp")."""
    from weatherunc.checkpoints import CheckpointError
    from weatherunc.errors import InputDataError
    from weatherunc.training.swag import collect_swag

    try:
        sidecar = collect_swag(
            _fine_tune_config(config, output_dir, threads),
            checkpoint,
            output,
            steps=steps,
            every=every,
            burn_in=burn_in,
            rank=rank,
            learning_rate=learning_rate,
        )
    except (ValueError, CheckpointError, InputDataError, KeyError, OSError) as error:
        fail(error)
    typer.echo(json.dumps({"swag": str(output), "sidecar": str(sidecar)}, indent=2))


def bbb(
    config: FineTuneConfigArgument,
    checkpoint: FineTuneCheckpointArgument,
    output: Annotated[
        Path, typer.Option("--output", help="Where to write the variational posterior (.safetensors).")
    ],
    steps: Annotated[int, typer.Option(help="Fine-tuning steps (one weight sample per batch).")] = 300,
    learning_rate: Annotated[float, typer.Option(help="Adam's learning rate of the means.")] = 1e-4,
    std_learning_rate: Annotated[
        float, typer.Option(help="Adam's learning rate of rho (std = softplus(rho)).")
    ] = 1e-2,
    initial_std: Annotated[float, typer.Option(help="Every weight's starting std.")] = 1e-3,
    prior_std: Annotated[float, typer.Option(help="Std of the prior N(0, prior_std^2).")] = 0.1,
    kl_weight: Annotated[
        float, typer.Option(help="Weight of KL / (steps x batch x targets); 1 is the ELBO.")
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the weight noise.")] = 0,
    output_dir: FineTuneOutputDirOption = None,
    threads: FineTuneThreadsOption = None,
) -> None:
    """Fit a Bayes by Backprop posterior (mean-field Gaussian) over a ConvNP's decoder and last U-Net
    block, or an ANP's or CNP's decoder; use it with get_model("convnp", bayes_by_backprop=OUTPUT,
    weight_samples=N) (or "anp", "cnp")."""
    from weatherunc.checkpoints import CheckpointError
    from weatherunc.errors import InputDataError
    from weatherunc.training.bayes_by_backprop import BayesByBackpropOptions, fit_bayes_by_backprop

    try:
        options = BayesByBackpropOptions(
            steps=steps,
            learning_rate=learning_rate,
            std_learning_rate=std_learning_rate,
            initial_std=initial_std,
            prior_std=prior_std,
            kl_weight=kl_weight,
            seed=seed,
        )
        sidecar = fit_bayes_by_backprop(
            _fine_tune_config(config, output_dir, threads), checkpoint, output, options
        )
    except (ValueError, CheckpointError, InputDataError, KeyError, OSError) as error:
        fail(error)
    typer.echo(json.dumps({"bayes_by_backprop": str(output), "sidecar": str(sidecar)}, indent=2))


def pack(
    config: Annotated[Path, typer.Argument(help="Training config YAML (see pipelines/training/).")],
    output: Annotated[Path, typer.Argument(help="The .npz file to write.")],
    seed: Annotated[
        int | None, typer.Option(help="Seed the run will use (it fixes the validation tasks).")
    ] = None,
) -> None:
    """Pack a training config's frames and validation tasks into one file, for `weatherunc train --packed`
    on a machine without the raw data."""
    from weatherunc.errors import InputDataError
    from weatherunc.training.config import load_training_config
    from weatherunc.training.packing import pack_training_data

    try:
        path = pack_training_data(load_training_config(config, seed=seed), output)
    except (ValueError, InputDataError, KeyError) as error:
        fail(error)
    typer.echo(json.dumps({"packed": str(path), "bytes": path.stat().st_size}))

"""Benchmark: does the epistemic variance rise on a radar never trained on and beyond the trained intensities?

Three splits of the interpolation benchmark's radar tasks (masked blocks and gauge networks,
:func:`interpolation.radar_tasks`), none of whose frames any model trained on:

- ``in_distribution``: KNMI 2010-08-26 from 05:20 (earlier KNMI frames of the event are training
  and validation frames of the neural processes);
- ``left_out_radar``: FMI 2016-09-28, a radar no neural process of this repository trained on;
- ``beyond_range``: the ``in_distribution`` tasks with every rate multiplied by
  ``BEYOND_FACTOR`` (beyond the training's intensity scaling of at most 2), capped at the largest
  plausible rate.

For each method and split: CRPS, 90 % central interval coverage, the bins' top-label ECE (where the
method has bins), the mean epistemic std (sqrt of ``latent_variance``, transformed space), the
epistemic share of the predictive variance, the AUROC of the epistemic std for telling the split's
targets from the in-distribution ones, and the prediction seconds relative to the single model.
Writes ``benchmarks/results/epistemic.json`` and ``.md`` (rows with ``method``, ``split``, ``crps``,
``coverage_90``, ``ece``, ``epistemic_std``, ``auroc``), and each method's training seconds beyond
its single model's, read from what the training runs recorded (:func:`training_costs`;
``--training-costs-only`` rewrites them without predicting).

    WEATHERUNC_DATA_DIR=../shared/data .venv/bin/python benchmarks/epistemic.py \
        [--swag benchmarks/checkpoints/convnp.swag.safetensors] \
        [--anp-swag benchmarks/checkpoints/anp.swag.safetensors] \
        [--anp-bbb benchmarks/checkpoints/anp.bbb.safetensors] \
        [--bbb benchmarks/checkpoints/convnp.bbb.safetensors] \
        [--members benchmarks/checkpoints/convnp_gp_ensemble/member-?.safetensors] \
        [--random-start-members benchmarks/checkpoints/convnp_gp_ensemble_random_start/member-?.safetensors] \
        [--anp-members benchmarks/checkpoints/anp_ensemble/member-?.safetensors] \
        [--stochastic-attention benchmarks/checkpoints/anp_stochastic_attention.safetensors] \
        [--self] [--self-coverage-first] [--methods gp,...] [--merge] [--training-costs-only]

``--members``: the checkpoints of a deep ensemble (``benchmarks/train_convnp_ensemble.sh``), scored
as ``convnp_gp_ensemble`` beside its first member alone (``convnp_gp``). ``--random-start-members``:
the members of ``pipelines/training/convnp_gp_ensemble_random_start.yaml`` (the same recipe with each
member's new weights drawn with its seed), scored as ``convnp_gp_ensemble_random_start`` beside its
first member alone (``convnp_gp_random_start``). ``--anp-members``: the
checkpoints of the ANP's deep ensemble (``benchmarks/train_anp_ensemble.sh``), scored as
``anp_ensemble`` beside the shipped ANP (``anp``), whose fine-tuned copies the members are.
``--anp-swag``: SWAG moments of the shipped ANP's decoder (``weatherunc swag
pipelines/training/anp_ensemble.yaml weatherunc/data/models/anp.safetensors OUTPUT``), scored as
``anp+swag`` with 10 weight samples; ``--anp-bbb``: a Bayes by Backprop posterior of the same
decoder (``weatherunc bbb`` with the same config), scored as ``anp+bbb``. ``--merge`` keeps the rows
of the methods not run from the existing ``epistemic.json``, with the relative cost of the run that
measured them.

``--self`` adds ``NAME+self`` for the ANP, its MC dropout and stochastic attention and the deep
ensemble: each prediction self-calibrated on pseudo-gaps of its own task's contexts; their
``relative_cost`` is over the wrapped method's own seconds in the same predictions.

``--self-coverage-first`` adds ``NAME+self_coverage_first`` for the same methods: self-calibrated
with ``COVERAGE_FIRST_OPTIONS`` (every std factor kept, each target's mean kept), the option chosen
on the validation windows of a radar no model saw.

``--stochastic-attention`` adds ``anp_stochastic_attention``: an ANP fine-tuned with stochastic
attention (Kim et al. 2022), predicting with ``ATTENTION_DRAWS`` attention draws as an ensemble.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from bin_scores import pooled_ece
from common import RESULTS, require_data_dir, result_header, write_result
from interpolation import radar_tasks

from weatherunc import conventions, metrics
from weatherunc.conventions import MAXIMUM_RATE_MM_PER_HOUR
from weatherunc.evaluation import score_prediction
from weatherunc.heads.fitting import pool_predictions
from weatherunc.heads.self_calibration import COVERAGE_FIRST_OPTIONS, SelfCalibrated
from weatherunc.models.registry import get_model
from weatherunc.prediction import epistemic_share
from weatherunc.tasks import Task

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"
BEYOND_FACTOR = 4.0
IN_DISTRIBUTION, LEFT_OUT, BEYOND = "in_distribution", "left_out_radar", "beyond_range"
SPLIT_DATASETS = {IN_DISTRIBUTION: "knmi_20100826", LEFT_OUT: "fmi_20160928"}
#: Methods also run self-calibrated with ``--self`` (weatherunc.heads.self_calibration: the std
#: factors scale the latent and the noise variance alike, so the epistemic share is the method's).
SELF_CALIBRATED = (
    "anp",
    "anp_mc_dropout",
    "anp_stochastic_attention",
    "convnp_gp_ensemble",
    "anp_ensemble",
    "convnp_gp_ensemble_random_start",
    "anp+swag",
    "anp+bbb",
)
#: Each method's single-model reference for the relative prediction cost.
SINGLE = {
    "convnp+swag": "convnp",
    "convnp+bbb": "convnp",
    "anp_mc_dropout": "anp",
    "convnp_gp_ensemble": "convnp_gp",
    "convnp_gp_ensemble_random_start": "convnp_gp_random_start",
    "anp_stochastic_attention": "anp",
    "anp_ensemble": "anp",
    "anp+swag": "anp",
    "anp+bbb": "anp",
}
#: Attention draws of ``anp_stochastic_attention`` (ensemble members, each with its latent draws);
#: ``--attention-draws`` overrides it.
ATTENTION_DRAWS = 8


def scaled(task: Task, factor: float) -> Task:
    """``task`` with every rate multiplied by ``factor`` (capped at the largest plausible rate)."""
    return Task(
        task.context_coordinates,
        np.minimum(task.context_values * factor, MAXIMUM_RATE_MM_PER_HOUR),
        task.target_coordinates,
        np.minimum(task.target_values * factor, MAXIMUM_RATE_MM_PER_HOUR),
        target_dim=task.target_dim,
        target_coords=task.target_coords,
        description=f"{task.description}, rates x {factor:g}",
    )


def models(
    swag: Path | None,
    members: list[Path],
    bbb: Path | None = None,
    stochastic_attention: Path | None = None,
    attention_draws: int = ATTENTION_DRAWS,
    self_calibrated: bool = False,
    anp_members: Sequence[Path] = (),
    random_start_members: Sequence[Path] = (),
    coverage_first: bool = False,
    anp_swag: Path | None = None,
    anp_bbb: Path | None = None,
) -> dict[str, object]:
    """The methods compared, by name (``convnp+swag`` with ``swag``, ``convnp+bbb`` with ``bbb``, the
    deep ensemble and its first member with ``members``, ``anp_stochastic_attention`` with
    ``stochastic_attention``, an ANP checkpoint with stochastic attention, ``anp_ensemble`` with
    ``anp_members``, ``anp+swag`` with ``anp_swag``, ``anp+bbb`` with ``anp_bbb``,
    ``convnp_gp_ensemble_random_start`` and its first member alone with ``random_start_members``;
    with ``self_calibrated``, each of
    :data:`SELF_CALIBRATED` that is there also as ``NAME+self``, and with ``coverage_first`` as
    ``NAME+self_coverage_first``, self-calibrated with
    :data:`~weatherunc.heads.self_calibration.COVERAGE_FIRST_OPTIONS`)."""
    chosen = {
        "gp": lambda: get_model("gp"),
        "convnp": lambda: get_model("convnp"),
        "anp": lambda: get_model("anp"),
        "anp_mc_dropout": lambda: get_model("anp", mc_dropout=True, name="anp_mc_dropout"),
    }
    if swag is not None:
        chosen["convnp+swag"] = lambda: get_model("convnp", swag=swag, weight_samples=10)
    if bbb is not None:
        chosen["convnp+bbb"] = lambda: get_model("convnp", bayes_by_backprop=bbb, weight_samples=10)
    for suffix, checkpoints in (("", members), ("_random_start", random_start_members)):
        if checkpoints:  # a GP-prior ConvNP deep ensemble, and its first member alone
            single, ensemble = f"convnp_gp{suffix}", f"convnp_gp_ensemble{suffix}"
            chosen[single] = lambda path=checkpoints[0], name=single: get_model(
                "convnp", checkpoint=path, name=name
            )
            chosen[ensemble] = lambda paths=checkpoints, name=ensemble: get_model(
                "convnp", members=paths, name=name
            )
    if anp_swag is not None:
        chosen["anp+swag"] = lambda: get_model("anp", swag=anp_swag, weight_samples=10)
    if anp_bbb is not None:
        chosen["anp+bbb"] = lambda: get_model("anp", bayes_by_backprop=anp_bbb, weight_samples=10)
    if anp_members:
        chosen["anp_ensemble"] = lambda: get_model("anp", members=anp_members, name="anp_ensemble")
    if stochastic_attention is not None:
        chosen["anp_stochastic_attention"] = lambda: get_model(
            "anp",
            checkpoint=stochastic_attention,
            stochastic_attention_samples=attention_draws,
            name="anp_stochastic_attention",
        )
    variants = {"self": None} if self_calibrated else {}
    if coverage_first:
        variants["self_coverage_first"] = COVERAGE_FIRST_OPTIONS
    for variant, options in variants.items():
        for name in [name for name in SELF_CALIBRATED if name in chosen]:
            label = f"{name}+{variant}"
            chosen[label] = lambda factory=chosen[name], options=options, label=label: SelfCalibrated(
                factory(), options, name=label
            )
    return chosen


def _history_seconds(path: Path, step: int | None = None) -> float | None:
    """The training seconds a run's ``history.json`` recorded at ``step`` (its last record if None);
    None where the file or the seconds are missing."""
    if not path.exists():
        return None
    records = json.loads(path.read_text())
    records = records if isinstance(records, list) else records.get("history", [])
    chosen = [record for record in records if step is None or record.get("step") == step]
    return float(chosen[-1]["seconds"]) if chosen and chosen[-1].get("seconds") is not None else None


def _metadata_seconds(sidecar: Path, key: str) -> float | None:
    """The seconds under ``key`` in a checkpoint sidecar's ``metadata``; None where missing."""
    if not sidecar.exists():
        return None
    value = json.loads(sidecar.read_text()).get("metadata", {}).get(key)
    return None if value is None else float(value)


def _posterior_cost(
    checkpoints: Path, kind: str, posterior: str, single_s: float | None
) -> dict[str, object]:
    """The row of ``KIND+POSTERIOR`` (``swag`` or ``bbb``): the seconds its file's sidecar recorded."""
    return {
        "method": f"{kind}+{posterior}",
        "single": kind,
        "extra_s": _metadata_seconds(checkpoints / f"{kind}.{posterior}.json", "seconds"),
        "single_s": single_s,
    }


def training_costs(checkpoints: Path = CHECKPOINTS) -> list[dict[str, object]]:
    """Each method's training seconds beyond its single model's, and that single model's own, as
    the training runs recorded them (run histories' ``seconds``, sidecars' ``metadata``), with
    ``relative`` = extra / single where both were measured on this project's 2-core CPU; None
    where a run did not record its seconds. MC dropout and self-calibration train nothing."""
    convnp_run = checkpoints / "convnp_run" / "history.json"
    shipped_convnp = _history_seconds(convnp_run, 1750)  # the shipped ConvNP is this run's step 1,750
    gp_prior_start = _history_seconds(convnp_run, 3750)  # the GP-prior members start at step 3,750
    costs: list[dict[str, object]] = [
        {"method": "convnp", "single": "convnp", "extra_s": 0.0, "single_s": shipped_convnp},
        _posterior_cost(checkpoints, "convnp", "swag", shipped_convnp),
        _posterior_cost(checkpoints, "convnp", "bbb", shipped_convnp),
    ]
    for folder, single in (
        ("convnp_gp_ensemble", "convnp_gp"),
        ("convnp_gp_ensemble_random_start", "convnp_gp_random_start"),
    ):
        histories = sorted((checkpoints / folder).glob("member-*.history.json"))
        members = [_history_seconds(path) for path in histories]
        known = members and None not in members and gp_prior_start is not None
        costs.append(
            {
                "method": folder,
                "single": single,
                "extra_s": round(sum(members[1:]), 1) if known else None,
                "single_s": round(gp_prior_start + members[0], 1) if known else None,
            }
        )
    # the ANP trained on a GPU (anp_gpu_training.json): its CPU fine-tunings are not comparable with it
    costs += [
        {"method": "anp_mc_dropout", "single": "anp", "extra_s": 0.0, "single_s": None},
        _posterior_cost(checkpoints, "anp", "swag", None),
        _posterior_cost(checkpoints, "anp", "bbb", None),
        {
            "method": "anp_stochastic_attention",
            "single": "anp",
            "extra_s": _metadata_seconds(checkpoints / "anp_stochastic_attention.json", "training_wall_s"),
            "single_s": None,
        },
        {"method": "anp_ensemble", "single": "anp", "extra_s": None, "single_s": None},
    ]
    for cost in costs:
        extra, single = cost["extra_s"], cost["single_s"]
        cost["relative"] = round(extra / single, 2) if extra is not None and single else None
    return costs


def split_tasks() -> dict[str, list[Task]]:
    """The tasks of each split."""
    tasks = {split: [task for _, _, task in radar_tasks(name)] for split, name in SPLIT_DATASETS.items()}
    tasks[BEYOND] = [scaled(task, BEYOND_FACTOR) for task in tasks[IN_DISTRIBUTION]]
    return tasks


def summarise(predictions: list[xr.Dataset], tasks: list[Task]) -> dict[str, object]:
    """Scores of one method on one split, and its targets' epistemic std ``[n]``."""
    scores = [score_prediction(prediction, task) for prediction, task in zip(predictions, tasks)]
    sizes = np.array([task.n_target for task in tasks], dtype=float)
    latent = np.concatenate([p[conventions.LATENT_VARIANCE].values for p in predictions])
    noise = np.concatenate([p[conventions.NOISE_VARIANCE].values for p in predictions])
    row: dict[str, object] = {
        name: round(float(np.average([score[name] for score in scores], weights=sizes)), 4)
        for name in ("crps", "coverage_90")
    }
    row["ece"] = None
    if all(conventions.BIN_PROBABILITY in p for p in predictions):
        row["ece"] = round(
            pooled_ece(*pool_predictions(predictions, [task.target_values for task in tasks])), 4
        )
    # four significant figures: the shares of the neural processes are far below 0.001
    row["epistemic_std"] = float(f"{np.sqrt(latent).mean():.4g}")
    row["epistemic_share"] = float(f"{np.mean(epistemic_share(latent, noise)):.4g}")
    row["predict_s"] = round(float(sum(float(p.attrs["predict_seconds"]) for p in predictions)), 2)
    if all("self_calibration_seconds" in p.attrs for p in predictions):  # METHOD+self
        row["self_calibration_s"] = round(
            float(sum(float(p.attrs["self_calibration_seconds"]) for p in predictions)), 2
        )
    return {"row": row, "epistemic": np.sqrt(latent)}


def costs_markdown(costs: list[dict[str, object]]) -> str:
    """The training costs (:func:`training_costs`) as a Markdown table."""
    names = ["method", "single", "extra_s", "single_s", "relative"]
    lines = [
        "Training seconds beyond the single model's (`extra_s`), the single model's own (`single_s`), "
        "as the runs recorded them; empty where not recorded or not comparable (the ANP trained on a GPU). "
        "MC dropout and self-calibration (`+self` rows) train nothing.",
        "",
        "| " + " | ".join(names) + " |",
        "|" + "---|" * len(names),
    ]
    for cost in costs:
        lines.append(
            "| " + " | ".join("" if cost.get(name) is None else str(cost[name]) for name in names) + " |"
        )
    return "\n".join(lines) + "\n"


def markdown(rows: list[dict[str, object]]) -> str:
    """The rows as a Markdown table."""
    names = [
        "method",
        "split",
        "crps",
        "coverage_90",
        "ece",
        "epistemic_std",
        "epistemic_share",
        "auroc",
        "relative_cost",
    ]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for row in rows:
        lines.append(
            "| " + " | ".join("" if row.get(name) is None else str(row[name]) for name in names) + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--swag", type=Path, default=None, help="SWAG moments of the shipped ConvNP")
    parser.add_argument("--anp-swag", type=Path, default=None, help="SWAG moments of the shipped ANP")
    parser.add_argument(
        "--anp-bbb", type=Path, default=None, help="Bayes by Backprop posterior of the shipped ANP"
    )
    parser.add_argument(
        "--bbb", type=Path, default=None, help="Bayes by Backprop posterior of the shipped ConvNP"
    )
    parser.add_argument("--members", type=Path, nargs="*", default=[], help="a deep ensemble's checkpoints")
    parser.add_argument(
        "--anp-members", type=Path, nargs="*", default=[], help="the ANP deep ensemble's checkpoints"
    )
    parser.add_argument(
        "--random-start-members",
        type=Path,
        nargs="*",
        default=[],
        help="checkpoints of the deep ensemble whose members' new weights were drawn with their seed",
    )
    parser.add_argument(
        "--stochastic-attention",
        type=Path,
        default=None,
        help="an ANP checkpoint with stochastic attention (adds anp_stochastic_attention)",
    )
    parser.add_argument(
        "--attention-draws", type=int, default=ATTENTION_DRAWS, help="of the stochastic attention"
    )
    parser.add_argument(
        "--self", action="store_true", dest="self_calibrated", help="also the methods self-calibrated"
    )
    parser.add_argument(
        "--self-coverage-first",
        action="store_true",
        help="also the methods self-calibrated with the coverage-first options",
    )
    parser.add_argument("--methods", default="", help="comma-separated subset of the methods")
    parser.add_argument("--merge", action="store_true", help="keep the existing rows of the methods not run")
    parser.add_argument(
        "--training-costs-only",
        action="store_true",
        help="rewrite the training costs beside the existing rows, predicting nothing",
    )
    arguments = parser.parse_args()
    if arguments.training_costs_only:
        previous = json.loads((RESULTS / "epistemic.json").read_text())
        write(previous["rows"], previous.get("self_calibration_options", {}), previous, arguments)
        return
    require_data_dir()
    torch.set_num_threads(2)
    start = time.perf_counter()
    factories = models(
        arguments.swag,
        arguments.members,
        arguments.bbb,
        arguments.stochastic_attention,
        arguments.attention_draws,
        arguments.self_calibrated,
        arguments.anp_members,
        arguments.random_start_members,
        arguments.self_coverage_first,
        arguments.anp_swag,
        arguments.anp_bbb,
    )
    only = [name for name in arguments.methods.split(",") if name]
    unknown = sorted(set(only) - set(factories))
    if unknown:
        sys.exit(f"unknown methods {unknown}; valid: {sorted(factories)}")
    tasks = split_tasks()
    rows: list[dict[str, object]] = []
    options: dict[str, dict[str, object]] = {}  # of each +self method, where they differ from the defaults
    for method, factory in factories.items():
        if only and method not in only:
            continue
        model = factory()
        if "+self" in method:
            options[method] = model.options.changed()
        results = {}
        for split, split_tasks_ in tasks.items():
            results[split] = summarise([model.predict(task) for task in split_tasks_], split_tasks_)
            print(method, split, results[split]["row"], flush=True)
        for split, result in results.items():
            row = {"method": method, "split": split, **result["row"]}
            row["auroc"] = (
                None
                if split == IN_DISTRIBUTION
                else round(
                    metrics.area_under_roc(result["epistemic"], results[IN_DISTRIBUTION]["epistemic"]), 4
                )
            )
            rows.append(row)
    # Costs relative to seconds measured in this run only (run its single model beside a method);
    # the rows kept by --merge keep the relative cost of the run that measured them.
    seconds = {(row["method"], row["split"]): row["predict_s"] for row in rows}
    for row in rows:
        if row.get("self_calibration_s") is not None:  # METHOD+self: its own predictions' model seconds
            reference = row["predict_s"] - row["self_calibration_s"]
        else:
            reference = seconds.get((SINGLE.get(row["method"], row["method"]), row["split"]))
        row["relative_cost"] = round(row["predict_s"] / reference, 2) if reference else None
    if arguments.merge and (RESULTS / "epistemic.json").exists():
        run = {row["method"] for row in rows}
        previous = json.loads((RESULTS / "epistemic.json").read_text())
        rows = [row for row in previous["rows"] if row["method"] not in run] + rows
        options = {**previous.get("self_calibration_options", {}), **options}
    write(rows, options, {"wall_s": round(time.perf_counter() - start, 1)}, arguments)


def write(
    rows: list[dict[str, object]],
    options: dict[str, dict[str, object]],
    run: dict[str, object],
    arguments: argparse.Namespace,
) -> None:
    """Write ``epistemic.json`` and ``.md``: the ``rows``, the +self methods' ``options``, the
    training costs, ``wall_s`` (and, where it has one, the ``machine``) from ``run``."""
    table = markdown(rows)
    costs = training_costs()
    print(table)
    header = result_header(__doc__)
    if "machine" in run:  # --training-costs-only: the rows keep the machine and date that measured them
        header["machine"] = run["machine"]
    result = {
        **header,
        "wall_s": run.get("wall_s"),
        "beyond_factor": BEYOND_FACTOR,
        "splits": {**SPLIT_DATASETS, BEYOND: f"{SPLIT_DATASETS[IN_DISTRIBUTION]} x {BEYOND_FACTOR:g}"},
        "attention_draws": run.get("attention_draws", arguments.attention_draws),
        "self_calibration_options": options,
        "training_cost": costs,
        "rows": rows,
    }
    path = write_result("epistemic.json", result)
    computer = result["machine"]
    header = (
        f"{computer['date']}, {computer['cpu_count']} cores ({computer['processor']}), "
        f"Python {computer['python']}"
    )
    (Path(path).with_suffix(".md")).write_text(
        f"{result['benchmark']}\n\n{header}\n\n{table}\n{costs_markdown(costs)}"
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

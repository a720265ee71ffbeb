"""Benchmark: calibrated rain probabilities on held-out events, before and after temperature scaling.

Methods: the ANP's categorical head (single model), a deep ensemble of the ANP and further
members (``--members``; by default the shipped recipe at width 64,
benchmarks/checkpoints/anp_task_normalised_small, trained with the same seed: no second member
of the shipped width has been trained, so this ensemble differs by width, not by seed), the ANP
with MC dropout, and bin probabilities derived from the GP's predictive distribution. Both ANP
checkpoints carry bin heads refitted in prediction mode (``weatherunc refit-head``; see
docs/training.md). Each method's temperature (and std factor) is fitted on validation tasks drawn from the
training config's validation frames (never the test frames) and applied whole, as a job applies it
(bins derived from the GP's Gaussian follow its std factor; a head's bins do not); scores are
computed on the test tasks of benchmarks/interpolation.py (masked blocks and gauge networks, three
frames per dataset).
Bins: 0, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, inf mm/h. ECE: 15 bins, top-label (multiclass) and
per threshold. Writes benchmarks/results/calibration.json, calibration.md, reliability diagrams
(PNG), per-method figures of how often each bin is observed against its mean forecast probability
per dataset (``bin_frequencies_*.png``; the numbers are in each row), and the shipped ANP
calibration (weatherunc/data/models/anp.calibration.json).

Also per row: vector scaling fitted on the same validation tasks (``*_after_vector``), its L2
penalty chosen by leave-one-dataset-out cross-validation over the two validation events
(``heads.calibration.fit_vector_scaling``; penalty and held-out NLLs in ``vector_calibrations``),
and, as diagnostics only, fits on the scored tasks themselves: the temperature that minimises
their NLL (``oracle_temperature``, ``ece_oracle_temperature``), the one of lowest top-label
ECE on a grid of 0.1-10 (``lowest_ece_temperature``, ``ece_lowest_temperature``), and
unpenalised vector scaling (``ece_oracle_vector``). The second bounds what temperature
scaling can do for the ECE: the NLL minimiser need not minimise the ECE (on KNMI it gave 0.037
where the shipped temperature gave 0.030), so an ECE goal that the second misses is out of reach
of any single temperature on those tasks; the third says how much of the rest is a shift of the
scored events' bin frequencies, which per-bin biases absorb and a temperature cannot.

``ece_consistency_after`` (median) and ``ece_consistency_after_95`` (95th percentile): the
top-label ECE that the temperature-scaled probabilities would score if they were perfectly
calibrated, over 200 draws of outcomes from themselves (``metrics.consistency_top_label_ece``,
Bröcker & Smith 2007). An ECE near these is sampling noise; they assume independent targets,
so they understate the noise of spatially correlated ones.

``--self``: only the self-calibrated rows (``METHOD+self`` for the GP, the ANP and the ConvNP:
weatherunc.heads.self_calibration, fitted per task on pseudo-gaps of the task's own contexts, no
validation data), scored on the same test tasks before and after, per radar and pooled; they
replace the ``+self`` rows of the existing calibration.json (the other rows are kept) and are
tabled in ``calibration_self.md``. ``self_calibration_cost``: the seconds of self-calibration over
the model's own seconds for the prediction (for the GP its fit and its conditioning: the
pseudo-tasks share the fit, see weatherunc.heads.self_calibration.self_calibrate). With
``--window-frames N`` (N > 1) each task also draws pseudo-targets from the up to ``N - 1`` frames before
its own in the same window (a job's rolling window, ``calibration: {self: {window_frames: N}}``;
the task's targets withheld in them, as a gap that persists); those rows go to
``calibration_self_window_N.json`` and ``.md``, and calibration.json is left as it is.

    WEATHERUNC_DATA_DIR=../shared/data .venv/bin/python benchmarks/calibration.py [--members
    runs/anp_member_1/best.safetensors ...] [--self [--window-frames N]]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr
from bin_scores import ECE_BINS, probability_and_observed
from common import RESULTS, machine, require_data_dir, result_header, write_result
from interpolation import RADAR_DATASETS, frame_histories, radar_tasks

from weatherunc import metrics
from weatherunc.conventions import DEFAULT_BIN_EDGES
from weatherunc.evaluation import interval_coverage
from weatherunc.heads.bins import with_bin_probabilities
from weatherunc.heads.calibration import Calibration, VectorScaling, lowest_ece_temperature
from weatherunc.heads.fitting import (
    calibrate_predictions,
    pool_predictions,
    pooled_predictions,
    probabilities_and_observed_bins,
    target_groups,
)
from weatherunc.heads.self_calibration import EarlierFrame, SelfCalibrated, model_options, self_calibrate
from weatherunc.models.ensemble import EnsembleInterpolator
from weatherunc.models.registry import PACKAGED_MODELS_DIR, get_model
from weatherunc.plotting import bin_frequency_figure, reliability_figure, save_figure
from weatherunc.training.config import load_training_config
from weatherunc.training.validation import labelled_validation_tasks

THRESHOLDS = (0.1, 1.0, 5.0, 10.0)
#: The ensemble's second member unless ``--members`` names others (the committed results use it).
DEFAULT_MEMBER = Path(__file__).resolve().parent / "checkpoints" / "anp_task_normalised_small.safetensors"


def scores(pooled: xr.Dataset, truth: np.ndarray) -> dict[str, object]:
    """Probability scores of predictions pooled over tasks (:func:`pool_predictions`) against their truths
    ``[target]``."""
    probability, observed = probability_and_observed(pooled, truth)
    result: dict[str, object] = {
        "ece": round(metrics.top_label_ece(probability, observed, bins=ECE_BINS), 5),
        "ece_consistency": [
            round(float(value), 5)
            for value in np.quantile(
                metrics.consistency_top_label_ece(probability, bins=ECE_BINS, draws=200), [0.5, 0.95]
            )
        ],
        "nll": round(float(metrics.categorical_nll(probability, observed)), 5),
        "brier": round(float(metrics.multiclass_brier_score(probability, observed)), 5),
        "rps": round(float(metrics.ranked_probability_score(probability, observed)), 5),
    }
    lower = pooled["bin_lower"].values
    for threshold in THRESHOLDS:
        forecast = probability.where(xr.DataArray(lower >= threshold - 1e-12, dims="bin"), 0.0).sum("bin")
        event = xr.DataArray(truth >= threshold, dims="target")
        decomposition = metrics.brier_decomposition(forecast, event)
        result[f"threshold_{threshold:g}"] = {
            "ece": round(metrics.expected_calibration_error(forecast, event, bins=ECE_BINS), 5),
            "brier": round(float(decomposition.brier_score), 5),
            "reliability": round(decomposition.reliability, 5),
            "resolution": round(decomposition.resolution, 5),
            "uncertainty": round(decomposition.uncertainty, 5),
        }
    result["diagram"] = metrics.top_label_calibration(probability, observed, bins=ECE_BINS).compute()
    known = np.isfinite(observed.values)
    result["observed_bin_frequency"] = [
        round(float(value), 4)
        for value in np.bincount(observed.values[known].astype(np.int64), minlength=probability.sizes["bin"])
        / known.sum()
    ]
    result["forecast_bin_frequency"] = [
        round(float(value), 4)
        for value in probability.isel(target=np.flatnonzero(known)).mean("target").values
    ]
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--members",
        nargs="*",
        default=[str(DEFAULT_MEMBER)],
        help="checkpoints of further ANP ensemble members (none: no ensemble row)",
    )
    parser.add_argument(
        "--self",
        dest="self_only",
        action="store_true",
        help="only the self-calibrated rows, merged into the existing result",
    )
    parser.add_argument(
        "--window-frames", type=int, default=1, help="with --self: frames of the rolling window (1: none)"
    )
    arguments = parser.parse_args()
    require_data_dir()
    if arguments.window_frames < 1 or (arguments.window_frames > 1 and not arguments.self_only):
        sys.exit("--window-frames: a count >= 1, with --self")
    if arguments.self_only:
        self_calibration_main(arguments.window_frames)
        return
    start = time.perf_counter()
    training = load_training_config("pipelines/training/anp.yaml")
    labelled = labelled_validation_tasks(training.validation, 24, seed=101)
    validation = [task for _, task in labelled]
    groups = target_groups(validation, [dataset for dataset, _ in labelled])
    anp = get_model("anp")
    methods = {
        "anp": anp,
        "anp_mc_dropout": get_model("anp", mc_dropout=True, name="anp_mc_dropout"),
        "gp": get_model("gp"),
    }
    if arguments.members:
        members = [anp, *[get_model("anp", checkpoint=Path(path)) for path in arguments.members]]
        methods["anp_ensemble"] = EnsembleInterpolator(members, name="anp_ensemble")
    described = f"24 validation tasks of {', '.join(s.dataset for s in training.validation)}"
    calibrations, vector_calibrations = {}, {}
    for name, model in methods.items():
        pooled, truth = pooled_predictions(model, validation)  # predicted once, both scalings fitted on it
        calibrations[name] = calibrate_predictions(pooled, truth, description=described)
        vector_calibrations[name] = calibrate_predictions(
            pooled, truth, method="vector", description=described, groups=groups
        )
    calibrations["anp"].save(PACKAGED_MODELS_DIR / "anp.calibration.json")
    tests = {dataset: [task for _, _, task in radar_tasks(dataset)] for dataset in RADAR_DATASETS}
    rows, diagrams = [], {}
    for method, model in methods.items():
        calibration: Calibration = calibrations[method]
        before_all, after_all, vector_all, truths_all = [], [], [], []
        for dataset, tasks in tests.items():
            before = [with_bin_probabilities(model.predict(task)) for task in tasks]
            # applied whole, as a job applies it: bins derived from the Gaussian (the GP's) follow the
            # std factor, and the probability scaler was fitted on them so
            after = [calibration.apply(prediction) for prediction in before]
            vector = [vector_calibrations[method].apply(prediction) for prediction in before]
            truths = [task.target_values for task in tasks]
            pooled_before = pool_predictions(before, truths)  # pooled once, scored and diagnosed
            rows.append(
                _row(
                    dataset,
                    method,
                    calibration,
                    scores(*pooled_before),
                    scores(*pool_predictions(after, truths)),
                    scores(*pool_predictions(vector, truths)),
                    *diagnostics(*pooled_before),
                )
            )
            before_all += before
            after_all += after
            vector_all += vector
            truths_all += truths
        pooled_before = pool_predictions(before_all, truths_all)
        scored_before, scored_after = scores(*pooled_before), scores(*pool_predictions(after_all, truths_all))
        rows.append(
            _row(
                "all",
                method,
                calibration,
                scored_before,
                scored_after,
                scores(*pool_predictions(vector_all, truths_all)),
                *diagnostics(*pooled_before),
            )
        )
        diagrams[f"{method} before"] = scored_before["diagram"]
        diagrams[f"{method} after"] = scored_after["diagram"]
    figure_paths = []
    for method in methods:
        figure = reliability_figure(
            {"before": diagrams[f"{method} before"], "after": diagrams[f"{method} after"]},
            title=f"{method}: most probable bin, test events",
        )
        figure_paths.append(
            str(save_figure(figure, RESULTS / f"reliability_{method}.png").relative_to(RESULTS.parent.parent))
        )
        frequencies = {
            row["dataset"]: (
                np.array(row["observed_bin_frequency"]),
                np.array(row["forecast_bin_frequency_after"]),
            )
            for row in rows
            if row["method"] == method
        }
        figure = bin_frequency_figure(
            frequencies,
            bin_labels(),
            title=(
                f"{method} after temperature scaling: how often each bin is observed and forecast, test "
                "events"
            ),
        )
        figure_paths.append(
            str(
                save_figure(figure, RESULTS / f"bin_frequencies_{method}.png").relative_to(
                    RESULTS.parent.parent
                )
            )
        )
    table = markdown(rows)
    print(table)
    result = {
        **result_header(__doc__),
        "wall_s": round(time.perf_counter() - start, 1),
        "validation_targets": {
            name: calibration.scores["validation_targets"] for name, calibration in calibrations.items()
        },
        "calibrations": {name: calibration.to_dict() for name, calibration in calibrations.items()},
        "vector_calibrations": {
            name: calibration.to_dict() for name, calibration in vector_calibrations.items()
        },
        "rows": rows,
        "figures": figure_paths,
    }
    write_result("calibration.json", result)
    (RESULTS / "calibration.md").write_text(table)


SELF_METHODS = ("gp", "anp", "convnp")


def _self_row(
    dataset: str, method: str, before: list[xr.Dataset], after: list[xr.Dataset], tasks: list
) -> dict[str, object]:
    truths = [task.target_values for task in tasks]
    scored_before, scored_after = (
        scores(*pool_predictions(before, truths)),
        scores(*pool_predictions(after, truths)),
    )
    coverage = {
        label: float(
            np.mean(
                np.concatenate(
                    [
                        interval_coverage(prediction, task.target_values, 0.9).values[
                            np.isfinite(task.target_values)
                        ]
                        for prediction, task in zip(predictions, tasks)
                    ]
                )
            )
        )
        for label, predictions in (("before", before), ("after", after))
    }
    seconds = [float(prediction.attrs["self_calibration_seconds"]) for prediction in after]
    predict = [
        float(prediction.attrs.get("fit_seconds", 0.0)) + float(prediction.attrs["predict_seconds"])
        for prediction in before
    ]
    return {
        "dataset": dataset,
        "method": f"{method}+self",
        **{
            f"{name}_{label}": scored[name]
            for name in ("ece", "nll", "brier", "rps")
            for label, scored in (("before", scored_before), ("after", scored_after))
        },
        "coverage_90_before": round(coverage["before"], 4),
        "coverage_90_after": round(coverage["after"], 4),
        "self_calibration_cost": round(float(np.sum(seconds) / max(np.sum(predict), 1e-9)), 3),
    }


def _windowed(model, task, history: tuple[list[np.ndarray], np.ndarray, np.ndarray]) -> xr.Dataset:
    """``model``'s prediction of ``task`` self-calibrated with the earlier frames of ``history``
    (:func:`interpolation.frame_histories`), ``task``'s targets withheld in them."""
    frames = []
    for values in history[0]:
        withheld = values.copy()
        withheld[task.target_coords["row"], task.target_coords["column"]] = np.nan
        frames.append(EarlierFrame(withheld, history[1], history[2]))
    return SelfCalibrated(model, earlier_frames=tuple(frames)).predict(task)


def self_calibration_main(window_frames: int = 1) -> None:
    """The ``--self`` rows; see the module docstring."""
    start = time.perf_counter()
    tests = {dataset: [task for _, _, task in radar_tasks(dataset)] for dataset in RADAR_DATASETS}
    histories = {
        dataset: [history for history in frame_histories(dataset, window_frames - 1) for _ in range(2)]
        for dataset in (RADAR_DATASETS if window_frames > 1 else ())
    }
    rows, changed = [], {}
    for method in SELF_METHODS:
        model = get_model(method)
        changed[method] = model_options(model).changed()
        before_all, after_all, tasks_all = [], [], []
        for dataset, tasks in tests.items():
            before = [with_bin_probabilities(model.predict(task)) for task in tasks]
            after = (
                [_windowed(model, task, history) for task, history in zip(tasks, histories[dataset])]
                if window_frames > 1
                else [self_calibrate(model, task) for task in tasks]
            )
            rows.append(_self_row(dataset, method, before, after, tasks))
            print(rows[-1], flush=True)
            before_all, after_all, tasks_all = before_all + before, after_all + after, tasks_all + tasks
        rows.append(_self_row("all", method, before_all, after_all, tasks_all))
    run = {
        "machine": machine(),
        "wall_s": round(time.perf_counter() - start, 1),
        "options": changed,  # each model's own options (model_options) that differ from the defaults
        "window_frames": window_frames,
    }
    stem = "calibration_self" if window_frames == 1 else f"calibration_self_window_{window_frames}"
    if window_frames == 1:
        previous = json.loads((RESULTS / "calibration.json").read_text())
        previous["rows"] = [row for row in previous["rows"] if not row["method"].endswith("+self")] + rows
        previous["self_calibration"] = run
        write_result("calibration.json", previous)
    else:
        write_result(f"{stem}.json", {**result_header(__doc__), **run, "rows": rows})
    columns = (
        "dataset",
        "method",
        "ece_before",
        "ece_after",
        "nll_before",
        "nll_after",
        "brier_before",
        "brier_after",
        "coverage_90_before",
        "coverage_90_after",
        "self_calibration_cost",
    )
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + [
        "| " + " | ".join(str(row[column]) for column in columns) + " |" for row in rows
    ]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")


def bin_labels(edges: tuple[float, ...] = DEFAULT_BIN_EDGES) -> list[str]:
    """Labels of the precipitation bins (mm/h) from their lower edges, the last bin open."""
    upper = [*edges[1:], np.inf]
    return [f"{low:g}-{high:g}" if np.isfinite(high) else f">{low:g}" for low, high in zip(edges, upper)]


def diagnostics(
    pooled: xr.Dataset, truth: np.ndarray
) -> tuple[tuple[float, float], tuple[float, float], float]:
    """Three diagnostic bounds fitted on the scored predictions themselves (pooled by
    :func:`pool_predictions`), never applied to a published prediction:

    - (temperature, top-label ECE after it) with the temperature fitted on these very tasks: how
      far temperature scaling could go if the validation tasks were exactly like them;
    - (temperature, top-label ECE) of the lowest ECE any temperature of the grid reaches (see the
      module docstring);
    - the top-label ECE after unpenalised vector scaling fitted on these tasks: per-bin biases can
      absorb a shift of these tasks' bin frequencies, which no single temperature can.
    """
    oracle = calibrate_predictions(pooled, truth)
    probabilities, observed = probabilities_and_observed_bins(pooled, truth)
    scaled = VectorScaling.fit(probabilities, observed).apply(probabilities)
    vector = metrics.top_label_ece(
        xr.DataArray(scaled, dims=("target", "bin")),
        xr.DataArray(observed.astype(np.float64), dims="target"),
        bins=ECE_BINS,
    )
    return (
        (oracle.probability.temperature, oracle.scores["ece_after"]),
        lowest_ece_temperature(probabilities, observed),
        vector,
    )


def _row(
    dataset: str,
    method: str,
    calibration: Calibration,
    before: dict,
    after: dict,
    vector: dict,
    oracle: tuple[float, float],
    lowest: tuple[float, float],
    vector_oracle: float,
) -> dict[str, object]:
    row: dict[str, object] = {
        "dataset": dataset,
        "method": method,
        "temperature": round(calibration.probability.temperature, 4),
    }
    for key in ("ece", "nll", "brier", "rps"):
        row[f"{key}_before"], row[f"{key}_after"], row[f"{key}_after_vector"] = (
            before[key],
            after[key],
            vector[key],
        )
    row["ece_consistency_after"], row["ece_consistency_after_95"] = after["ece_consistency"]
    row["oracle_temperature"], row["ece_oracle_temperature"] = round(oracle[0], 4), round(oracle[1], 5)
    row["lowest_ece_temperature"], row["ece_lowest_temperature"] = round(lowest[0], 4), round(lowest[1], 5)
    row["ece_oracle_vector"] = round(vector_oracle, 5)
    row["observed_bin_frequency"] = after["observed_bin_frequency"]
    row["forecast_bin_frequency_before"], row["forecast_bin_frequency_after"] = (
        before["forecast_bin_frequency"],
        after["forecast_bin_frequency"],
    )
    for threshold in THRESHOLDS:
        name = f"threshold_{threshold:g}"
        row[f"ece_before_{threshold:g}"], row[f"ece_after_{threshold:g}"] = (
            before[name]["ece"],
            after[name]["ece"],
        )
        row[f"brier_decomposition_before_{threshold:g}"] = {
            key: before[name][key] for key in ("brier", "reliability", "resolution", "uncertainty")
        }
        row[f"brier_decomposition_after_{threshold:g}"] = {
            key: after[name][key] for key in ("brier", "reliability", "resolution", "uncertainty")
        }
    return row


def markdown(rows: list[dict[str, object]]) -> str:
    """The main columns as a Markdown table."""
    columns = (
        "dataset",
        "method",
        "temperature",
        "ece_before",
        "ece_after",
        "ece_consistency_after",
        "ece_consistency_after_95",
        "ece_after_vector",
        "oracle_temperature",
        "ece_oracle_temperature",
        "lowest_ece_temperature",
        "ece_lowest_temperature",
        "ece_oracle_vector",
        "ece_before_1",
        "ece_after_1",
        "nll_before",
        "nll_after",
        "nll_after_vector",
        "brier_before",
        "brier_after",
        "rps_before",
        "rps_after",
    )
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[column]) for column in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

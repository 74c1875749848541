"""The tables of the book's summary and "Beyond the paper" chapters, read from the run folders of a build
(``P``: the notebook's ``report.Params``). The notebooks narrate and plot them; the logic lives here."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from .classifier import saved_evaluation
from .config import BUDGET, OVER_BUDGET, VARIANTS, baseline_of, batch_bn_fid, make_config, speed_levers
from .guard import collapse_audit
from .models import build_classifier, build_dcgan, count_params, layer_table
from .report import seed_spread
from .results import cached, read_json, run_config, stopped_seconds, training_minutes

PAPER_RECIPE = "(paper recipe)"
SCREEN_STEPS = 16_000   # a screen's length in the paper profile: a third of a run, where its ranking holds


def metrics(run: Path) -> dict:
    return read_json(Path(run) / "metrics.json")


def _provenance(run: Path) -> dict:
    return read_json(Path(run) / "provenance.json")


def fid_of(P, seed: int, variant: str = "") -> dict:
    """{step: FID} of the finished FID of a DCGAN run ({} where it is not scored)."""
    f = cached(P.config("fid", seed=seed, variant=variant))
    return metrics(f)["fid"] if f is not None else {}


def fid_sweep(fid_dir: Path | None) -> pd.DataFrame | None:
    """The 1,000-sample FID against step of a finished FID folder (None: no folder, or no sweep in it)."""
    return pd.read_csv(fid_dir / "fid_sweep.csv") if fid_dir is not None and (fid_dir / "fid_sweep.csv").is_file() \
        else None


def accuracies(P, variant: str = "") -> list[float]:
    """Test accuracy (%) of the variant's finished classifier runs, one per seed."""
    return list(seed_accuracies(P, variant).values())


def seed_accuracies(P, variant: str = "") -> dict[int, float]:
    """{seed: test accuracy (%)} of the variant's finished classifier runs."""
    return {s: 100 * metrics(d)["test_acc"] for s, d in P.finished("classifier", variant=variant).items()}


def same_seeds_difference(accs: dict[int, float], base: dict[int, float]) -> float:
    """The mean of ``accs`` less that of ``base`` over the seeds both have (NaN: none). A seed draws the same
    batches in every recipe (and the same initial weights where the network is the same), so a one-seed row is
    read against its baseline's same seed rather than against a mean over luckier and unluckier seeds."""
    both = sorted(accs.keys() & base.keys())
    return seed_spread([accs[s] for s in both])[0] - seed_spread([base[s] for s in both])[0]


def compute(run: Path, fid_dir: Path | None = None) -> str:
    """Training's time and device (the time it was stopped left out, and named); with ``fid_dir`` its FID's
    too (its device where it differs)."""
    prov, stopped = _provenance(run), stopped_seconds(run) / 60   # the history read once
    text = f"{prov['wall_seconds'] / 60 - stopped:.1f} min" + (
        f" (+{stopped:.0f} stopped)" if stopped >= 1 else "")
    if fid_dir is not None:
        fprov = _provenance(fid_dir)
        text += f" + FID {fprov['wall_seconds'] / 60:.1f} min" + (
            f" ({fprov['device']})" if fprov["device"] != prov["device"] else "")
    return f"{text}, {prov['device']}"


def late_d(run: Path, until: int = 0) -> str:
    """The discriminator's mean D(x) and D(G(z)) (sigmoid of its outputs, whatever the loss) over the last
    tenth of a DCGAN run's logged steps (of those up to ``until``): how well it still tells real from
    generated images."""
    h = pd.read_csv(Path(run) / "history.csv")
    h = h[h.step <= until] if until else h
    late = h[h.step > 0.9 * h.step.max()]
    return f"{late.D_x.mean():.2f} / {late.D_G_z1.mean():.2f}"


def seed_count(row) -> int:
    """How many finished seeds a table row's numbers come from ("none yet", or only screens: none)."""
    seeds = row["finished seeds"]
    return seeds.count(",") + 1 if seeds[:1].isdigit() else 0


def n_seeds(row) -> str:
    """How many finished seeds a table row's numbers come from (a mean where more than one)."""
    n = seed_count(row)
    return f"{n} seed" + ("s, their mean" if n > 1 else "")


# ---------------------------------------------------------------------------------------------------
# seed noise

def classifier_seeds(P) -> pd.DataFrame:
    """One row per finished seed of the build's classifier config."""
    rows = []
    for s, d in P.finished("classifier").items():
        m, prov = metrics(d), _provenance(d)
        rows.append({"seed": s, "test accuracy (%)": 100 * m["test_acc"], "train accuracy (%)": 100 * m["train_acc"],
                     "final training loss": m["final_train_loss"], "device": prov["device"],
                     "training (min)": training_minutes(d, prov["wall_seconds"])})
    return pd.DataFrame(rows)


def dcgan_seeds(P) -> pd.DataFrame:
    """One row per finished seed of the build's DCGAN config, with its FID at each scored snapshot."""
    rows = []
    for s, d in P.finished("dcgan").items():
        f = cached(P.config("fid", seed=s))
        fid = metrics(f) if f is not None else None
        prov = _provenance(d)
        rows.append({"seed": s, **({f"FID at {k}": v for k, v in fid["fid"].items()} if fid else {"FID": "not scored"}),
                     "samples": fid["n_samples"] if fid else 0, "device": prov["device"],
                     "training (min)": training_minutes(d, prov["wall_seconds"])})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------
# the ablation: one row per named variant

def _fields(fields: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in fields.items())


def classifier_ablation(P) -> tuple[pd.DataFrame, dict]:
    """(one row per classifier variant: its fields, parameters, finished seeds, mean test accuracy, baseline and
    the difference to it, compute, and {seed: test accuracy} under "by seed" (for the text, not for display);
    {label: history of its first seed})."""
    by_seed_of = functools.cache(lambda name: seed_accuracies(P, name))   # a baseline's, once for all its rows
    rows, curves = [], {}
    for name, fields in {"": {}, **VARIANTS["classifier"]}.items():
        done = P.finished("classifier", variant=name)
        by_seed, baseline = by_seed_of(name), baseline_of("classifier", name)
        accs, base = list(by_seed.values()), by_seed_of(baseline or "")   # no baseline: the paper recipe
        vs = seed_spread(base.values())[0]
        cfg = P.config("classifier", variant=name)
        rows.append({"variant": name or PAPER_RECIPE, "fields": _fields(fields),
                     "params": count_params(build_classifier(cfg.__dict__)),
                     "finished seeds": ", ".join(map(str, done)) or "none yet",
                     "test accuracy (%)": seed_spread(accs)[0],
                     "baseline": (baseline or PAPER_RECIPE) if name else "",
                     "vs baseline (points)": (seed_spread(accs)[0] - vs) if accs and name else float("nan"),
                     "same seeds (points)": same_seeds_difference(by_seed, base) if name else float("nan"),
                     "compute (first seed)": compute(next(iter(done.values()))) if done else "",
                     "by seed": by_seed})
        if done:
            curves[name or "paper recipe"] = pd.read_csv(next(iter(done.values())) / "history.csv")
    return pd.DataFrame(rows), curves


def _screened(folders: list[tuple[Path, dict]], name: str) -> str:
    """'screened: seed 0 to 16k' where a variant has screens among ``folders`` (``_screen_folders``: those the
    screens table holds, of any length), else ''."""
    steps = {}
    for _, c in folders:
        if c["variant"] == name:
            steps.setdefault(c["until"], []).append(c["seed"])
    return "; ".join(f"screened: seed {', '.join(map(str, sorted(seeds)))} to {step // 1000}k"
                     for step, seeds in sorted(steps.items()))


def dcgan_ablation(P) -> tuple[pd.DataFrame, dict]:
    """(one row per DCGAN variant: fields, parameters, finished seeds, mean FID at 46k and 50k, baseline and the
    difference to it at 46k, late D(x) / D(G(z)), compute, and {seed: FID at 50k} under "by seed" (for the text,
    not for display); {label: FID-against-step of its first seed})."""

    @functools.cache   # a baseline's, once for all the rows measured against it
    def fid46(name):   # the variant's mean FID at 46k over its finished seeds (NaN: none)
        return seed_spread([f["46000"] for f in (fid_of(P, s, name) for s in P.finished("dcgan", variant=name))
                            if "46000" in f])[0]

    rows, sweeps, screened = [], {}, _screen_folders(P)
    for name, fields in {"": {}, **VARIANTS["dcgan"]}.items():
        done, baseline = P.finished("dcgan", variant=name), baseline_of("dcgan", name)
        fids = {s: fid_of(P, s, name) for s in done}
        cfg = P.config("dcgan", variant=name)
        at = {k: seed_spread([f[k] for f in fids.values() if k in f])[0] for k in ("46000", "50000")}
        f = cached(P.config("fid", seed=next(iter(done)), variant=name)) if done else None
        first = next(iter(done.values())) if done else None
        rows.append({"variant": name or PAPER_RECIPE, "fields": _fields(fields),
                     "params (G + D)": sum(map(count_params, build_dcgan(cfg.__dict__))),
                     "finished seeds": ", ".join(map(str, done)) or _screened(screened, name) or "none yet",
                     "FID at 46k": at["46000"], "FID at 50k": at["50000"],
                     "baseline": (baseline or PAPER_RECIPE) if name else "",
                     "vs baseline at 46k": at["46000"] - fid46(baseline) if name else float("nan"),
                     "D(x) / D(G(z)), last 10 %": late_d(first) if done else "",
                     "compute (first seed)": compute(first, f) if done else "",
                     "by seed": {s: f["50000"] for s, f in fids.items() if "50000" in f}})
        sweep = fid_sweep(f)
        if sweep is not None:
            sweeps[name or "paper recipe"] = sweep
    return pd.DataFrame(rows), sweeps


def _changes(table: pd.DataFrame, experiment: str, column: str, min_seeds: int) -> pd.DataFrame:
    """The rows that ran with at least ``min_seeds`` seeds, speed levers aside (they are the paper's recipe
    in other rounding, never a change that helps), and the references over the parameter budget."""
    aside = speed_levers(experiment) | OVER_BUDGET[experiment]
    ran = table[table[column].notna() & ~table.variant.isin(aside)]
    return ran[ran.apply(seed_count, axis=1) >= min_seeds]


def beyond_noise(table: pd.DataFrame, experiment: str, column: str, seeds: list[float],
                 higher_is_better: bool) -> tuple[dict[str, list[tuple[str, float]]], float] | None:
    """Each measured change in ``table`` (its ``column``: the difference to its baseline; speed levers aside)
    against the band that seed noise alone spans, twice the standard deviation of the paper recipe's ``seeds``
    (as ``fig-gains`` draws it): ({"better": [(variant, difference)], "worse": [...], "inside": [...]}, each
    best first; the band's half-width), or None with fewer than two seeds."""
    band = 2 * seed_spread(seeds)[1]
    if band != band:   # NaN: fewer than two seeds
        return None
    sign = 1 if higher_is_better else -1
    ran = _changes(table, experiment, column, 1)
    sides = {"better": [], "worse": [], "inside": []}
    for variant, diff in sorted(zip(ran.variant, ran[column]), key=lambda r: -sign * r[1]):
        sides["inside" if abs(diff) <= band else "better" if sign * diff > 0 else "worse"].append((variant, diff))
    return sides, band


def best_classifier(table: pd.DataFrame, min_seeds: int = 1):
    """The row of the highest mean test accuracy among the variants that ran with at least ``min_seeds``
    seeds, speed levers aside; None with fewer than two rows that ran (one, where ``min_seeds`` > 1)."""
    ran = _changes(table, "classifier", "test accuracy (%)", min_seeds)
    return ran.iloc[ran["test accuracy (%)"].values.argmax()] if len(ran) > (min_seeds == 1) else None


def best_dcgan(table: pd.DataFrame, min_seeds: int = 1):
    """(the row with the lowest mean FID at 46k or 50k among the variants that ran with at least
    ``min_seeds`` seeds, speed levers aside, that FID, and its step), or None with fewer than two rows
    that ran (one, where ``min_seeds`` > 1)."""
    ran = _changes(table, "dcgan", "FID at 46k", min_seeds)
    if len(ran) <= (min_seeds == 1):
        return None
    lowest = ran[["FID at 46k", "FID at 50k"]].min(axis=1)
    best = ran.loc[lowest.idxmin()]
    return best, lowest.min(), "46k" if best["FID at 46k"] <= best["FID at 50k"] else "50k"


# ---------------------------------------------------------------------------------------------------
# measurements on finished runs

def flip_gains(P) -> tuple[pd.DataFrame, list[str]]:
    """(one row per finished classifier run with its saved evaluation of the other test-time flip: accuracy
    without and with the flip and the gain; the commands that would save the missing evaluations)."""
    rows, missing = [], []
    for name in ("", *VARIANTS["classifier"]):
        for s, d in P.finished("classifier", variant=name).items():
            cfg = run_config(d)
            trained_flip = cfg["tta_flip"]
            as_trained = 100 * metrics(d)["test_acc"]
            other = saved_evaluation(d, flip=not trained_flip)
            if cfg["tta_shift"]:   # trained with shifts too: the flip alone is another saved evaluation
                flip_only = saved_evaluation(d, flip=trained_flip)
                other = other if flip_only else None
                as_trained = 100 * flip_only["acc"] if flip_only else as_trained
            if other is None:
                run = P.shown(d)   # as the reader's command names it, not this machine's path
                missing.append(f"`python -m effcifar evaluate {run}{'' if trained_flip else ' --flip'} --save`")
                continue
            plain, flipped = (100 * other["acc"], as_trained) if trained_flip else (as_trained, 100 * other["acc"])
            rows.append({"variant": name or PAPER_RECIPE, "seed": s, "trained with the flip": trained_flip,
                         "without flip (%)": plain, "with flip (%)": flipped, "gain (points)": flipped - plain})
    return pd.DataFrame(rows), missing


def shift_gains(P) -> tuple[pd.DataFrame, list[str]]:
    """(one row per finished classifier run evaluated with the flip both without and with test-time shifts of
    one pixel: accuracy with the flip (2 views), with flip and shifts (6 views) and the gain; the commands that
    would save the missing evaluations). Only runs trained with the flip: their two numbers share it."""
    rows, missing = [], []
    for name in ("", *VARIANTS["classifier"]):
        for s, d in P.finished("classifier", variant=name).items():
            cfg = run_config(d)
            if not cfg["tta_flip"]:
                continue
            as_trained = 100 * metrics(d)["test_acc"]
            other = saved_evaluation(d, flip=True, shift=0 if cfg["tta_shift"] else 1)
            if other is None:
                missing.append(f"`python -m effcifar evaluate {P.shown(d)} --flip"
                               f"{'' if cfg['tta_shift'] else ' --shift 1'} --save`")
                continue
            two, six = (100 * other["acc"], as_trained) if cfg["tta_shift"] else (as_trained, 100 * other["acc"])
            rows.append({"variant": name or PAPER_RECIPE, "seed": s, "flip (%)": two, "flip and shifts (%)": six,
                         "gain (points)": six - two})
    return pd.DataFrame(rows), missing


def training_fit(P) -> tuple[pd.DataFrame, list[str]]:
    """(one row per finished classifier run with its saved evaluation on the training images as they are,
    with the run's own test views: accuracy there and on the test set, and the gap; the commands that would
    save the missing evaluations). A network that fits its training images little better than the test
    images is short of capacity, not of regularisation."""
    rows, missing = [], []
    for name in ("", *VARIANTS["classifier"]):
        for s, d in P.finished("classifier", variant=name).items():
            cfg, m = run_config(d), metrics(d)
            fit = saved_evaluation(d, cfg["tta_flip"], cfg["tta_shift"], split="train")
            if fit is None:
                views = " --flip" * cfg["tta_flip"] + (f" --shift {cfg['tta_shift']}" if cfg["tta_shift"] else "")
                missing.append(f"`python -m effcifar evaluate {P.shown(d)} --split train{views} --save`")
                continue
            rows.append({"variant": name or PAPER_RECIPE, "seed": s, "params": m["params"],
                         "training images (%)": 100 * fit["acc"], "test images (%)": 100 * m["test_acc"],
                         "gap (points)": 100 * (fit["acc"] - m["test_acc"])})
    return pd.DataFrame(rows), missing


def budget_references(table: pd.DataFrame, fit: pd.DataFrame) -> pd.DataFrame:
    """One row per finished classifier reference over the parameter budget (``OVER_BUDGET``): its parameters
    (and how many times the budget), its test accuracy and the difference to its baseline on the seeds both
    have, and the fit of the training images of each over those same seeds (``training_fit``'s rows; NaN
    where not saved). Whether more parameters than the budget allows buy accuracy: if so, the budget binds."""
    rows, by_variant = [], table.set_index("variant")
    for name in sorted(OVER_BUDGET["classifier"]):
        row = by_variant.loc[name]
        if not row["by seed"]:
            continue
        base = row["baseline"]
        seeds = sorted(set(row["by seed"]) & set(by_variant.loc[base, "by seed"]))

        def trained(variant):
            on = fit[(fit.variant == variant) & fit.seed.isin(seeds)] if not fit.empty else fit
            return on["training images (%)"].mean() if len(on) == len(seeds) else float("nan")
        rows.append({"variant": name, "params": row["params"],
                     "times the budget": row["params"] / BUDGET["classifier"],
                     "seeds": ", ".join(map(str, seeds)),
                     "test accuracy (%)": seed_spread([row["by seed"][s] for s in seeds])[0],
                     "baseline": base, "same seeds (points)": row["same seeds (points)"],
                     "training images (%)": trained(name), "baseline's training images (%)": trained(base)})
    return pd.DataFrame(rows)


def gan_budget_references(table: pd.DataFrame) -> pd.DataFrame:
    """One row per DCGAN reference over the parameter budget (``OVER_BUDGET``) with a finished, scored run: its
    parameters (and how many times the budget), its FID at 50k (the step budget's end) and its baseline's on
    the seeds both have, the difference, and where it lies against the range of all the baseline's seeds
    (``dcgan_ablation``'s "by seed"). Whether more parameters than the budget allows buy a lower FID by the
    step budget's end: if so, the parameter budget binds the GAN."""
    rows, by_variant = [], table.set_index("variant")
    for name in sorted(OVER_BUDGET["dcgan"]):
        own, base = by_variant.loc[name, "by seed"], by_variant.loc[name, "baseline"]
        theirs = by_variant.loc[base, "by seed"]
        seeds = sorted(own.keys() & theirs.keys())
        if not seeds:
            continue
        fid = seed_spread([own[s] for s in seeds])[0]
        rows.append({"variant": name, "params": by_variant.loc[name, "params (G + D)"],
                     "times the budget": by_variant.loc[name, "params (G + D)"] / BUDGET["dcgan"],
                     "seeds": ", ".join(map(str, seeds)), "FID at 50k": fid, "baseline": base,
                     "same seeds (FID)": fid - seed_spread([theirs[s] for s in seeds])[0],
                     "baseline's seeds": _seed_range(list(theirs.values())),
                     "against the seeds": _against(fid, list(theirs.values()))})
    return pd.DataFrame(rows)


def fid_trend(P, window: int = 10_000) -> pd.DataFrame:
    """One row per finished, scored DCGAN run with an FID sweep: the least-squares slope of its 1,000-sample
    FID over the snapshots of the last ``window`` steps (FID points per 10,000 steps) with its standard
    error, and its 10,000-sample FIDs at 46k and 50k. How much the step budget's end still brings: a slope
    within two standard errors of zero is a run whose FID has stopped falling."""
    rows = []
    for name in ("", *VARIANTS["dcgan"]):
        for s in P.finished("dcgan", variant=name):
            f = cached(P.config("fid", seed=s, variant=name))
            sweep = fid_sweep(f)
            if sweep is None:
                continue
            late = sweep[sweep.step >= sweep.step.max() - window]
            if len(late) < 3:   # a line through two points has no error to judge it by
                continue
            (slope, _), cov = np.polyfit(late.step / 10_000, late.fid, 1, cov=True)
            scored = metrics(f)["fid"]
            rows.append({"variant": name or PAPER_RECIPE, "seed": s,
                         "snapshots": f"{len(late)}, {late.step.min():,}–{late.step.max():,}",
                         "slope (FID per 10k steps)": slope, "± s.e.": float(np.sqrt(cov[0, 0])),
                         "FID at 46k": scored.get("46000", float("nan")),
                         "FID at 50k": scored.get("50000", float("nan"))})
    return pd.DataFrame(rows)


def _sweep_at(f: Path | None, step: int) -> float | None:
    sweep = fid_sweep(f)
    return None if sweep is None or step not in set(sweep.step) else float(sweep.set_index("step").fid[step])


def _screen_folders(P) -> list[tuple[Path, dict]]:
    """(folder, config) of each finished screen of this build's config (not of other data, say); of one run
    screened to several steps (carried on from 8,000 to 16,000, say), the longest: its sweep holds the
    shorter one's FIDs, drawn from the same snapshots with the same samples."""
    longest = {}
    for f in sorted(Path(P.out).glob(f"fid-{P.profile}-*-screen*")):
        c = run_config(f)
        if c["until"] > 0 and cached(P.config("fid", seed=c["seed"], variant=c["variant"], until=c["until"])) == f:
            key = (c["variant"], c["seed"])
            if key not in longest or c["until"] > longest[key][1]["until"]:
                longest[key] = (f, c)
    return sorted(longest.values(), key=lambda found: found[0])


def screens(P) -> pd.DataFrame:
    """One row per finished screen (a DCGAN run stopped at step ``until`` and its 1,000-sample FID sweep so
    far, ``fid --set until=``): its FID at that step, its baseline's there (the mean of the sweeps of the
    baseline's finished whole runs, with their range), the difference, where it lies against that range
    (below, inside, above), its training minutes, and its late D(x) / D(G(z)) beside that of its baseline's
    first seed over the same steps. A screen's sweep is the one its whole run would show, so the two compare at
    equal steps."""
    rows = []
    for f, c in _screen_folders(P):
        name, step = c["variant"], c["until"]
        base = baseline_of("dcgan", name)
        base_runs = P.finished("dcgan", variant=base)
        theirs = [v for s in base_runs
                  if (v := _sweep_at(cached(P.config("fid", seed=s, variant=base)), step)) is not None]
        own = _sweep_at(f, step)
        rows.append({"variant": name, "seed": c["seed"], "steps": step, "FID (1k samples)": own,
                     "baseline": base or PAPER_RECIPE,
                     "baseline's FID there": float(np.mean(theirs)) if theirs else float("nan"),
                     "baseline's seeds": _seed_range(theirs),
                     "difference": own - float(np.mean(theirs)) if theirs else float("nan"),
                     "against the seeds": _against(own, theirs),
                     "training (min)": training_minutes(f, metrics(f)["train_seconds"]),
                     "D(x) / D(G(z)), last 10 %": late_d(f),
                     "baseline's there": late_d(next(iter(base_runs.values())), step) if base_runs else ""})
    return pd.DataFrame(rows)


def sweep_against_seeds(P, variant: str, seed: int) -> pd.DataFrame:
    """A finished DCGAN run's 1,000-sample FID sweep, snapshot by snapshot, against the sweeps of its baseline's
    finished whole runs at the same steps: their mean, their range and where the run lies against it (below,
    inside, above), with whether it stays there at every later snapshot. Where a change starts to pay, which a
    screen (a stop at one step) cannot tell. Empty without a sweep."""
    own = fid_sweep(cached(P.config("fid", seed=seed, variant=variant)))
    base = baseline_of("dcgan", variant)
    theirs = [sweep.set_index("step").fid for s in P.finished("dcgan", variant=base)
              if (sweep := fid_sweep(cached(P.config("fid", seed=s, variant=base)))) is not None]
    if own is None:
        return pd.DataFrame()
    rows = []
    for step, fid in zip(own.step, own.fid):
        at = [t[step] for t in theirs if step in t.index]
        rows.append({"step": int(step), "FID (1k samples)": float(fid),
                     "baseline's mean": float(np.mean(at)) if at else float("nan"),
                     "baseline's seeds": _seed_range(at),
                     "against the seeds": _against(fid, at)})
    table = pd.DataFrame(rows)
    where = table["against the seeds"]
    table["from here on"] = [where[i] if where[i] and where[i:].eq(where[i]).all() else "" for i in range(len(where))]
    return table


def _seed_range(seeds: list) -> str:
    """The range of the seeds' values with their count ("32.95–33.37 (3)"); the count alone with fewer than two."""
    return f"{min(seeds):.2f}–{max(seeds):.2f} ({len(seeds)})" if len(seeds) > 1 else f"{len(seeds)}"


def _against(value: float, seeds: list) -> str:
    """Where ``value`` lies against the range of ``seeds``: below, inside or above it ('' with fewer than two)."""
    if len(seeds) < 2:
        return ""
    return "below" if value < min(seeds) else "above" if value > max(seeds) else "inside"


def screen_validity(P, step: int) -> tuple[float, int]:
    """How well a screen to ``step`` ranks whole runs: over the finished, scored DCGAN runs with a sweep, the
    rank (Spearman) correlation between their 1,000-sample FID at ``step`` and their 10,000-sample FID at the
    first scored snapshot (46k); with the number of runs (NaN, 0 with fewer than three)."""
    first = P.config("fid").snapshots.split(",")[0]
    pairs = []
    for name in ("", *VARIANTS["dcgan"]):
        for s in P.finished("dcgan", variant=name):
            f = cached(P.config("fid", seed=s, variant=name))
            early, final = _sweep_at(f, step), metrics(f)["fid"].get(first) if f is not None else None
            if early is not None and final is not None:
                pairs.append((early, final))
    if len(pairs) < 3:
        return float("nan"), 0
    early, final = pd.DataFrame(pairs).rank().T.values
    return float(np.corrcoef(early, final)[0, 1]), len(pairs)


SIX_VIEWS = "classifier, six views"   # target_verdicts' row for the trained weights read with six test views


def six_view_accuracies(P, variant: str = "") -> list[float]:
    """Test accuracy (%) of the variant's finished classifier runs read with six test views (the flip, and
    shifts of one pixel with their mirror images): the run's own number where it was evaluated so, else its
    saved evaluation; [] where a seed has neither (``python -m effcifar evaluate RUN --flip --shift 1 --save``)."""
    values = []
    for d in P.finished("classifier", variant=variant).values():
        cfg = run_config(d)
        if cfg["tta_flip"] and cfg["tta_shift"] == 1:
            values.append(100 * metrics(d)["test_acc"])
        elif (saved := saved_evaluation(d, flip=True, shift=1)) is not None:
            values.append(100 * saved["acc"])
        else:
            return []
    return values


def target_verdicts(P, clf_table: pd.DataFrame, gan_table: pd.DataFrame) -> pd.DataFrame:
    """The chapter's targets (round one: 63 %, FID 35; issue 44's round two: 68 %, FID 28), each judged on
    the mean over three or more seeds of the closest recipe that has them: one row per target with that
    recipe, its seeds' mean ± std and the verdict, and, where a recipe with fewer seeds comes closer, that
    one with its value so far (open until it has three). The 68 % target is judged twice: on the accuracy
    each recipe was trained to report, and on the same weights read with six test views (the issue's
    multi-crop TTA: no training changes, three times the evaluation)."""
    rows = []
    candidates = {part: (_closest(P, part, table, 3), _closest(P, part, table, 1))   # each part's, read once
                  for part, table in (("classifier", clf_table), (SIX_VIEWS, clf_table), ("DCGAN", gan_table))}
    for part, goal, better in (("classifier", 63, "at least"), ("classifier", 68, "at least"),
                               (SIX_VIEWS, 68, "at least"), ("DCGAN", 35, "at most"), ("DCGAN", 28, "at most")):
        judged, closest = candidates[part]
        if closest is None:
            continue
        name, unit, values = judged or ("–", closest[1], [])
        mean, sd = seed_spread(values) if values else (float("nan"), float("nan"))
        if values:
            ok = mean >= goal if better == "at least" else mean <= goal
            verdict = "met" if ok else f"not met: {abs(mean - goal):.2f} short"
        else:
            verdict = "not judged yet: no recipe has three seeds"
        open_ = ""
        if closest[0] != name:
            c_mean = seed_spread(closest[2])[0]
            if (c_mean > mean if better == "at least" else c_mean < mean) or not values:
                open_ = f"{closest[0]}: {c_mean:.2f} ({len(closest[2])} of 3 seeds)"
        label = "classifier" if part == SIX_VIEWS else part   # the unit says which views
        rows.append({"target": f"{label}: {better} {goal} ({unit})", "judged on": name, "mean": mean,
                     "± std": sd, "seeds": len(values), "verdict": verdict, "closer, fewer seeds": open_})
    return pd.DataFrame(rows)


def _closest(P, part: str, table: pd.DataFrame, min_seeds: int):
    """(recipe, unit, its seeds' values) of the best recipe with at least ``min_seeds`` seeds, or None."""
    if part == SIX_VIEWS:   # the same weights, read with six test views: the best mean over complete seeds
        ran = _changes(table, "classifier", "test accuracy (%)", min_seeds)
        views = {name: six_view_accuracies(P, "" if name == PAPER_RECIPE else name) for name in ran.variant}
        views = {name: v for name, v in views.items() if len(v) >= min_seeds}
        if len(views) <= (min_seeds == 1):
            return None
        name = max(views, key=lambda n: seed_spread(views[n])[0])
        return name, "% test accuracy, six test views", views[name]
    if part == "classifier":
        best = best_classifier(table, min_seeds)
        if best is None:
            return None
        name = best["variant"]
        return name, "% test accuracy", accuracies(P, "" if name == PAPER_RECIPE else name)
    lowest = best_dcgan(table, min_seeds)
    if lowest is None:
        return None
    row, _, at = lowest
    name, key = row["variant"], "46000" if at == "46k" else "50000"
    variant = "" if name == PAPER_RECIPE else name
    values = [f[key] for f in (fid_of(P, s, variant) for s in P.finished("dcgan", variant=variant)) if key in f]
    return name, f"FID at {at}", values


def g_budget(P) -> pd.DataFrame:
    """G's parameters by the resolution each layer outputs, for the paper's G and each variant that changes
    the shape of G or D (the first variant of each shape), with G's total, its share at 4x4, and D's total."""
    spend, d_total, shapes = {}, {}, set()
    for name in ("", *(n for n, f in VARIANTS["dcgan"].items() if {"ngf", "g_widths", "ndf", "d_widths"} & set(f))):
        cfg = P.config("dcgan", variant=name)
        if (shape := (cfg.ngf, cfg.g_widths, cfg.ndf, cfg.d_widths, cfg.conditional)) in shapes:
            continue
        shapes.add(shape)
        G, D = build_dcgan(cfg.__dict__)
        rows_g = layer_table(G)
        by_res = pd.Series([r["params"] for r in rows_g],   # "184x4x4" -> 4x4; a conditional G's embedding apart
                           index=[r["output"].partition("x")[2] or "label embedding" for r in rows_g])
        spend[name or PAPER_RECIPE] = by_res.groupby(level=0, sort=False).sum()
        d_total[name or PAPER_RECIPE] = count_params(D)
    spend = pd.DataFrame(spend).T.fillna(0).astype(int)
    spend = spend[[c for c in ("label embedding", "4x4", "8x8", "16x16", "32x32") if c in spend]]
    spend["G total"] = spend.sum(axis=1)
    spend["share at 4x4 (%)"] = 100 * spend["4x4"] / spend["G total"]
    spend["D total"] = pd.Series(d_total)
    return spend.reset_index(names="variant (G)")


def collapse_audits(P) -> tuple[pd.DataFrame, list[tuple], dict]:
    """(one row per finished DCGAN run: the collapse guard's two signs read off it after the fact; its
    snapshots below the diversity threshold as (variant, seed, step, diversity, last diversity, whether the
    guard would have gone back); the thresholds {eps, min_diversity})."""
    rows, low, limits = [], [], {}
    for name in ("", *VARIANTS["dcgan"]):
        for s, d in P.finished("dcgan", variant=name).items():
            a = collapse_audit(d)
            div = a["diversity"]
            first = min(div, key=div.get) if div else None
            rows.append({"variant": name or PAPER_RECIPE, "seed": s, "log steps": a["log_steps"],
                         "D wins outright": len(a["d_wins"]), "highest D(x)": a["max_D_x"],
                         "lowest D(G(z))": a["min_D_G_z"],
                         "lowest diversity": div[first] if div else float("nan"),
                         "at step": first, "first diverse snapshot": a["armed_at"],
                         "diversity, last snapshot": div[max(div)] if div else float("nan")})
            low += [(name or "paper recipe", s, step, div[step], div[max(div)], step in a["restarts"])
                    for step in a["low_diversity"]]
            limits = {"eps": a["eps"], "min_diversity": a["min_diversity"]}
    return pd.DataFrame(rows), low, limits


def batch_bn(P) -> tuple[pd.DataFrame, list[str]]:
    """(one row per finished DCGAN run scored also with the generator's batch norms in training mode: the FID
    of its first scored snapshot both ways; the runs not scored so yet)."""
    settings = batch_bn_fid(P.profile)
    rows, missing = [], []
    for name in ("", *VARIANTS["dcgan"]):
        for s in P.finished("dcgan", variant=name):
            running, batch = fid_of(P, s, name), cached(P.config("fid", seed=s, variant=name, **settings))
            if not running:
                continue
            if batch is None:
                missing.append(f"`{name or 'paper recipe'}` seed {s}")
                continue
            for step, value in metrics(batch)["fid"].items():
                if step in running:
                    rows.append({"variant": name or PAPER_RECIPE, "seed": s, "step": int(step),
                                 "FID, running statistics": running[step], "FID, batch statistics": value,
                                 "difference": value - running[step]})
    return pd.DataFrame(rows), missing


# ---------------------------------------------------------------------------------------------------
# the summary chapter

def summary_runs(P) -> dict:
    """The runs the summary compares with the paper: {name: (config, metrics, provenance)} for the
    classifier, DCGAN and FID the pages before showed, and the FID floor where there is one."""
    clf_cfg, gan_cfg = P.run_config("classifier"), P.run_config("dcgan")
    fid_cfg = P.config("fid", gan_cfg.profile)
    out = {}
    for name, cfg, run_name in (("classifier", clf_cfg, clf_cfg.run_name), ("dcgan", gan_cfg, gan_cfg.run_name),
                                ("fid", fid_cfg, fid_cfg.run_name), ("floor", P.config("fid"),
                                                                      P.config("fid").floor_run_name)):
        d = Path(P.out) / run_name
        if name != "floor" or (d / "metrics.json").is_file():   # the floor is optional (the DCGAN page says why)
            out[name] = (cfg, metrics(d), _provenance(d))
    return out


def run_time_estimates(clf: dict, gan: dict, clf_device: str, gan_device: str) -> pd.DataFrame:
    """Each profile's training minutes at the measured seconds per step of the build's runs."""
    rows = []
    for prof in ("smoke", "quick", "paper"):
        c, g = make_config("classifier", prof), make_config("dcgan", prof)
        rows.append({"profile": prof, "classifier steps": c.steps, "DCGAN steps": g.steps,
                     f"classifier (min, {clf_device})": round(c.steps * (clf["seconds_per_step"] or float("nan")) / 60,
                                                               1),
                     f"DCGAN (min, {gan_device})": round(g.steps * (gan["seconds_per_step"] or float("nan")) / 60, 1)})
    return pd.DataFrame(rows)



def seed_mean(values: list[float]) -> str:
    """``mean ± std (N seeds)`` of one number over seeds ('' for fewer than two)."""
    if len(values) < 2:
        return ""
    m, sd = seed_spread(values)
    return f"{m:.2f} ± {sd:.2f} ({len(values)} seeds)"


def seed_columns(P, runs: dict) -> dict:
    """{quantity: ``seed_mean``} for the summary's numbers that exist for every seed: the classifier's test
    accuracy (%) and the FID at each scored snapshot, over the finished seeds of the runs' configs."""
    clf_profile, gan_profile = runs["classifier"][0].profile, runs["dcgan"][0].profile
    accs = [100 * m["test_acc"] for m in P.seed_metrics("classifier", clf_profile).values()]
    fids = list(P.seed_metrics("fid", gan_profile).values())
    return {"test accuracy (%)": seed_mean(accs),
            **{f"FID at step {int(s):,}": seed_mean([f["fid"][s] for f in fids if s in f["fid"]])
               for s in runs["fid"][1]["fid"]}}


def summary_rows(runs: dict, paper: dict) -> list[tuple[str, str, str, str]]:
    """(part, quantity, the paper's value, this build's) for every headline number of ``summary_runs``."""
    (_, clf, _), (_, gan, _), (_, fid, _) = runs["classifier"], runs["dcgan"], runs["fid"]
    floor = runs.get("floor", (None, None, None))[1]
    return [
        ("classifier", "parameters", f"{paper['classifier_params']:,}", f"{clf['params']:,}"),
        ("classifier", "optimisation steps", f"{paper['classifier_steps']:,}", f"{clf['steps']:,}"),
        ("classifier", "training accuracy (%)", f"{paper['train_acc']} ± {paper['train_acc_std']}",
         f"{100 * clf['train_acc']:.1f} ± {100 * clf['train_acc_std']:.1f}"),
        ("classifier", "test accuracy (%)", f"{paper['test_acc']} ± {paper['test_acc_std']}",
         f"{100 * clf['test_acc']:.1f} ± {100 * clf['test_acc_std']:.1f}"),
        ("classifier", "final training loss", f"{paper['final_train_loss']}", f"{clf['final_train_loss']:.3f}"),
        ("DCGAN", "generator parameters", f"{paper['params_G']:,}", f"{gan['params_G']:,}"),
        ("DCGAN", "discriminator parameters", f"{paper['params_D']:,}", f"{gan['params_D']:,}"),
        ("DCGAN", "optimisation steps", f"{paper['dcgan_steps']:,}", f"{gan['steps']:,}"),
        *[("DCGAN", f"FID at step {step:,}", f"{paper['fid']}" if step == paper["fid_step"] else "not given",
           f"{fid['fid'][str(step)]:.2f}" if str(step) in fid["fid"] else "not scored") for step in (46_000, 50_000)],
        ("DCGAN", "FID (best snapshot)", f"{paper['fid']}", f"{fid['best_fid']:.2f}"),
        ("DCGAN", "snapshot scored best (step)", f"{paper['fid_step']:,}", f"{fid['best_step']:,}"),
        ("DCGAN", "generated images for FID", f"{paper['fid_samples']:,}", f"{fid['n_samples']:,}"),
        ("DCGAN", f"FID floor: {fid['n_samples']:,} training vs {fid['n_reference']:,} test images", "not given",
         f"{fid['floor']:.2f}"),
        *([("FID floor", f"{floor['n_train_images']:,} training vs {floor['n_reference']:,} test images",
            "not given", f"{floor['fid']:.2f}")] if floor and floor["n_train_images"] != fid["n_samples"] else []),
    ]


def verdicts(P, runs: dict, paper: dict) -> dict:
    """The summary's verdicts on the paper's claims, by its stated criteria: the classifier reproduces at the
    paper's test accuracy less 2 points or more, the FID at 10 % above the paper's or less; only a ``paper``
    profile run on CIFAR-100 (with pytorch-fid's weights, for the FID) tests a claim. Each also holds the paper's
    number against our seeds' spread. {"verdict_clf", "verdict_params", "verdict_fid": text}."""
    from .report import against_seeds
    (clf_cfg, clf, _), (gan_cfg, gan, _), (_, fid, _) = runs["classifier"], runs["dcgan"], runs["fid"]
    acc = 100 * clf["test_acc"]
    if clf_cfg.profile == "paper" and clf["dataset"] == "CIFAR-100":
        accs = [100 * m["test_acc"] for m in P.seed_metrics("classifier", clf_cfg.profile).values()] or [acc]
        judged = seed_spread(accs)[0]   # the verdict is on the seeds' mean (seed 0 alone where it is the only one)
        on = f"the mean of {len(accs)} seeds, {judged:.2f} %" if len(accs) > 1 else f"{judged:.1f} %"
        ok = judged >= paper["test_acc"] - 2
        inside = abs(judged - paper["test_acc"]) <= paper["test_acc_std"]
        verdict_clf = (f"{'reproduced' if ok else 'not reproduced'}: {on} test accuracy with "
                       f"{clf['params']:,} parameters (seed {clf_cfg.seed}: {acc:.1f} %), against the paper's "
                       f"{paper['test_acc']} % with {paper['classifier_params']:,}; the difference, "
                       f"{judged - paper['test_acc']:+.1f} points, is {'inside' if inside else 'outside'} the paper's "
                       f"± {paper['test_acc_std']}. Our test accuracy (%) "
                       + against_seeds(paper["test_acc"], accs) + ".")
    else:
        verdict_clf = (f"not tested by this build: the {clf_cfg.profile} profile trained {clf['steps']:,} steps on "
                       f"{clf['dataset']} (test accuracy {acc:.1f} %); the paper profile on CIFAR-100 tests it.")
    same = (gan["params_G"], gan["params_D"]) == (paper["params_G"], paper["params_D"])
    verdict_params = (f"{'reproduced exactly' if same else 'not reproduced'}: generator {gan['params_G']:,}, "
                      f"discriminator {gan['params_D']:,}, total {gan['params_G'] + gan['params_D']:,} "
                      f"(paper: {paper['params_total']:,}).")
    if gan_cfg.profile == "paper" and gan["dataset"] == "CIFAR-100" and fid["inception"] == "pytorch-fid" \
            and fid["n_samples"] == paper["fid_samples"]:
        step = str(paper["fid_step"])
        at46 = fid["fid"].get(step)
        fids = [m["fid"][step] for m in P.seed_metrics("fid", gan_cfg.profile).values() if step in m["fid"]]
        judged = seed_spread(fids)[0] if len(fids) > 1 else fid["best_fid"]   # the seeds' mean at the paper's step
        ok = judged <= 1.1 * paper["fid"]
        on = (f"the mean of {len(fids)} seeds at the paper's {paper['fid_step']:,} steps is {judged:.2f} (seed "
              f"{gan_cfg.seed}: {fid['best_fid']:.2f} at step {fid['best_step']:,}, its best scored snapshot"
              + (f", {at46:.2f} at {paper['fid_step']:,})" if at46 is not None else ")")) if len(fids) > 1 else (
              f"FID {fid['best_fid']:.2f} at step {fid['best_step']:,} (the best scored snapshot)"
              + (f" and {at46:.2f} at the paper's {paper['fid_step']:,}" if at46 is not None else ""))
        verdict_fid = (f"{'reproduced' if ok else 'not reproduced'}: {on}, against the paper's {paper['fid']} at "
                       f"{paper['fid_step']:,}; the floor for these sample sizes (training against test images) is "
                       f"{fid['floor']:.2f}. Our FID at {paper['fid_step']:,} steps "
                       + against_seeds(paper["fid"], fids)
                       + ".")
    else:
        verdict_fid = (f"not tested by this build: FID {fid['best_fid']:.2f} from {fid['n_samples']:,} samples "
                       f"of a {gan['steps']:,}-step DCGAN with {fid['inception']} Inception weights is not "
                       f"comparable with the paper's {paper['fid']}.")
    return {"verdict_clf": verdict_clf, "verdict_params": verdict_params, "verdict_fid": verdict_fid}

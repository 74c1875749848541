"""What the notebooks call to show results: the parameters and profile banner of a page, tables, sample
grids, seed spreads, benchmark records. The pipeline that executes them and builds the book is ``book.py``."""
from __future__ import annotations

import html
import json
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import PROFILES, VARIANTS, ConfigError, make_config
from .results import cached, experiment_of, training_minutes

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "results" / "benchmark"   # benchmark records (committed): speed, end to end, reproduce
PARAMETERS = ("profile", "seed", "data", "verify", "out", "device", "retrain", "train", "variant")
_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}

PAPER = {  # the paper's own numbers, quoted for comparison (Kenny, Efficient CIFAR-100 Modelling)
    "classifier_params": 98_068, "train_acc": 68.1, "train_acc_std": 4.3, "test_acc": 56.9,
    "test_acc_std": 4.6, "final_train_loss": 1.099, "classifier_steps": 10_000,
    "params_G": 635_812, "params_D": 344_264, "params_total": 980_076, "fid": 46.85,
    "fid_step": 46_000, "dcgan_steps": 50_000, "fid_samples": 10_000,
}


@dataclass
class Params:
    profile: str
    seed: int
    data: str | None
    verify: bool
    out: str
    device: str
    retrain: bool
    train: bool      # False: a published build; every run must be finished already (nothing is trained)
    variant: str = ""   # a named change of the recipe (config.VARIANTS); applies to the experiments that have it

    def shown(self, path) -> str:
        """A run folder (or the results folder) as a reader names it, relative to the results folder's parent
        (``results/classifier-paper-seed0``), never this machine's path."""
        out = Path(self.out).resolve()
        return str(Path(out.name) / Path(path).resolve().relative_to(out)) if Path(path).resolve() != out \
            else out.name

    def config(self, experiment: str, profile: str | None = None, **extra):
        fields = dict(seed=self.seed, data=self.data, verify=self.verify, out=self.out, device=self.device,
                      variant=self.variant if self.variant in VARIANTS[experiment] else "")
        return make_config(experiment, profile or self.profile, **{**fields, **extra})

    def finished(self, experiment: str, profile: str | None = None, seeds=range(10), **extra) -> dict:
        """{seed: run folder} of the finished ``experiment`` runs of this config (with ``extra``) over ``seeds``:
        the seed study reads every seed there is."""
        runs = {s: cached(self.config(experiment, profile, **{**extra, "seed": s})) for s in seeds}
        return {s: d for s, d in runs.items() if d is not None}

    def seed_metrics(self, experiment: str, profile: str | None = None, **extra) -> dict:
        """{seed: metrics.json} of the runs ``finished`` names."""
        return {s: json.loads((d / "metrics.json").read_text())
                for s, d in self.finished(experiment, profile, **extra).items()}

    def lever_runs(self, experiment: str, variant: str, label: str):
        """The paper recipe's finished seeds (fp32) and those of ``variant`` (a speed lever), one row per run:
        its score (classifier: test accuracy; DCGAN: FID at each scored snapshot, where its FID is finished), device
        and training minutes. A lever becomes a default only within fp32's seed noise (issue 8)."""
        import pandas as pd
        rows = []
        for name in ("", variant):
            for s, d in self.finished(experiment, variant=name).items():
                if experiment == "classifier":
                    m = json.loads((d / "metrics.json").read_text())
                    score = {"test accuracy (%)": 100 * m["test_acc"], "final training loss": m["final_train_loss"]}
                else:
                    f = cached(self.config("fid", variant=name, seed=s))
                    if f is None:
                        continue
                    fid = json.loads((f / "metrics.json").read_text())["fid"]
                    score = {f"FID at {step}": v for step, v in fid.items()}
                prov = json.loads((d / "provenance.json").read_text())
                rows.append({"run": d.name, "recipe": label if name else "fp32", "seed": s, **score,
                             "device": prov["device"], "training (min)": training_minutes(d, prov["wall_seconds"])})
        return pd.DataFrame(rows)

    def run_config(self, experiment: str):
        """The config of the ``experiment`` run this build shows: its own profile's, unless ``train`` is
        off and that run is not finished; then the next smaller profile with a finished run stands in,
        and a warning on the page says so. Without any, the notebook stops with a clear error."""
        from IPython.display import display
        profile = self.profile
        if not (self.train or self.retrain):
            smaller = [p for p in PROFILES[PROFILES.index(self.profile):] if cached(self.config(experiment, p))]
            if not smaller:
                raise ConfigError(f"train=False, and {self.out} holds no finished {experiment} run for the "
                                  f"{self.profile} profile or a smaller one (seed {self.seed}, this dataset); "
                                  f"train one, or build with train=True (reproduce without --no-train)")
            profile = smaller[0]
        if profile != self.profile:
            display(warning(f"The {self.profile} profile's {experiment} run is not published yet",
                            f"This build does not train (train=False), so the finished {profile} profile's "
                            f"run on the same data stands in for it on this page: it shows the pipeline on "
                            f"{dataset_label(self.verify)} at a smaller budget, and tests no claim of the paper."))
        return self.config(experiment, profile)


def parameters(namespace: dict) -> Params:
    """Read the notebook's papermill parameters; a misspelt or unknown one is an error, not ignored."""
    unknown = sorted(k for k, v in namespace.items()
                     if not k.startswith("_") and k not in PARAMETERS and k not in _IPYTHON_NAMES
                     and not isinstance(v, types.ModuleType) and not callable(v))
    if unknown:
        raise ConfigError(f"unknown notebook parameter(s) {unknown}; the parameters are {list(PARAMETERS)}")
    p = Params(**{k: namespace[k] for k in PARAMETERS if k in namespace})
    if p.profile not in PROFILES:
        raise ConfigError(f"unknown profile {p.profile!r}; choose one of {list(PROFILES)}")
    if p.variant and not any(p.variant in v for v in VARIANTS.values()):
        raise ConfigError(f"unknown variant {p.variant!r}; choose one of "
                          f"{sorted({n for v in VARIANTS.values() for n in v})}")
    return p


def setup(namespace: dict) -> Params:
    """A notebook's first step: read its papermill parameters and show the profile banner."""
    from IPython.display import display
    p = parameters(namespace)
    display(banner(p.profile, dataset_label(p.verify)))
    if p.variant:
        fields = {e: v[p.variant] for e, v in VARIANTS.items() if p.variant in v}
        display(warning(f"Variant: {p.variant}", f"Not the paper's recipe: the runs on this page change {fields}."))
    return p


def banner(profile: str, dataset: str = "CIFAR-100"):
    """A prominent label naming the profile (and dataset) that produced a results page."""
    if profile == "paper" and dataset == "CIFAR-100":
        kind, text = "note", ("These results come from the paper's full budgets on CIFAR-100, except where a "
                              "warning below names a smaller run standing in for one not published yet.")
    else:
        kind = "warning"
        text = (f"These results come from the <b>{html.escape(profile)}</b> profile"
                + ("" if profile == "paper" else ", a budget far below the paper's: they show the pipeline "
                   "working, not the paper's numbers")
                + (f". Dataset: <b>{html.escape(dataset)}</b>." if dataset != "CIFAR-100" else "."))
    return _admonition(f"{kind} effcifar-profile", f"Profile: {profile}", text,
                       attrs=f' data-profile="{html.escape(profile)}"')


def warning(title: str, text: str):
    """A warning admonition in the page (plain text, escaped)."""
    return _admonition("warning", title, html.escape(text))


def _admonition(classes: str, title: str, body_html: str, attrs: str = ""):
    from IPython.display import HTML
    return HTML(f'<div class="admonition {classes}"{attrs}><p class="admonition-title">{html.escape(title)}</p>'
                f'<p>{body_html}</p></div>')


def dataset_label(verify: bool) -> str:
    return "CIFAR-100" if verify else "CIFAR-format data, not checked against CIFAR-100's checksums"


def table(df, **formatters):
    """A results table as HTML in the book's table style: no index, integers with thousands separators, a
    missing value (a run not made yet) as a dash."""
    from IPython.display import HTML
    fmt = {c: "{:,}".format for c, dtype in df.dtypes.items() if str(dtype).startswith("int")}
    fmt.update(formatters)
    return HTML(df.to_html(index=False, border=0, classes=["table"], formatters=fmt, escape=True, na_rep="–"))


def show_measured(df, missing: list[str], column: str, sentence: str, unmeasured: str = "Not evaluated yet") -> None:
    """Display a table of numbers measured again on finished runs (its float columns to 2 decimals), then
    ``sentence`` about its ``column`` (formatted with ``n``, ``mean``, ``lo``, ``hi``) and the commands that
    would measure the ``missing`` rows."""
    from IPython.display import Markdown, display
    if not df.empty:
        display(table(df, **{c: "{:.2f}".format for c, dtype in df.dtypes.items() if str(dtype).startswith("float")}))
        v = df[column]
        display(Markdown(sentence.format(n=len(df), mean=v.mean(), lo=v.min(), hi=v.max())))
    if missing:
        display(Markdown(f"{unmeasured}: " + "; ".join(missing) + "."))


def variant_lines(ax, series: dict, baseline: str, marker: str | None = None) -> None:
    """One line per variant, ``series`` {label: (x, y)}: the baseline thick and black, the others in 20
    distinct colours and, past 10, dashed; the legend outside the axes on the right."""
    import matplotlib.pyplot as plt
    colours = plt.get_cmap("tab20").colors
    if baseline in series:
        ax.plot(*series[baseline], marker=marker, label=baseline, color="k", lw=2.5, zorder=3)
    for i, label in enumerate(label for label in series if label != baseline):
        # tab20's dark shades first, then its light ones, dashed and wider
        ax.plot(*series[label], marker=marker, label=label, color=colours[2 * (i % 10) + i // 10 % 2],
                lw=1.2 if i < 10 else 1.8, ls="-" if i < 10 else "--")
    if series:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    ax.grid(alpha=0.3)


def image_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """uint8 N x 3 x H x W -> one H' x W' x 3 uint8 array for ``imshow``."""
    from torchvision.utils import make_grid
    return make_grid(images, nrow=nrow, padding=padding, pad_value=255).permute(1, 2, 0).numpy()


@torch.no_grad()
def _logits(classifier, images: torch.Tensor, device="cpu", chunk: int = 500) -> torch.Tensor:
    """The trained classifier's logits (on the CPU) for uint8 ``images``, ``chunk`` at a time."""
    from .data import normalize
    classifier = classifier.to(device).eval()
    return torch.cat([classifier(normalize(images[i:i + chunk].to(device))).cpu()
                      for i in range(0, len(images), chunk)])


@torch.no_grad()
def best_samples(netG, classifier, n: int, k: int = 4, seed: int = 0, device="cpu"):
    """Figure 6's automatic choice: of ``n`` generated images, the ``k`` to which the trained classifier
    gives the highest softmax confidence. Returns (images uint8, class indices, confidences)."""
    from .fid import generate
    images = generate(netG, n, seed=seed + 1, device=device)
    conf, cls = torch.softmax(_logits(classifier, images, device), 1).max(1)
    top = conf.argsort(descending=True)[:k]
    return images[top], cls[top], conf[top]


def _conditional(netG) -> None:
    if not getattr(netG, "num_classes", 0):
        raise ValueError("this needs a class-conditional generator (a DCGAN run of a variant with "
                         "conditional=True, e.g. --variant conditional); this one ignores labels")


@torch.no_grad()
def class_grid(netG, noise: torch.Tensor, classes: list[int]) -> torch.Tensor:
    """A class-conditional generator's samples, one row per class of ``classes`` and one column per noise
    vector, the same noise in every row: what the label alone changes. uint8, row after row."""
    from .data import to_uint8
    _conditional(netG)
    z = noise.repeat(len(classes), 1)
    y = torch.tensor(classes, dtype=torch.int64).repeat_interleave(len(noise))
    return to_uint8(netG.eval()(z, y))


@torch.no_grad()
def label_agreement(netG, classifier, n: int, seed: int = 0, device="cpu") -> dict:
    """How often the trained classifier names the class that a class-conditional generator was asked for:
    ``n`` samples, the classes in turn (sample i of class i mod 100, as ``generate`` draws them). Chance is
    1 %; the classifier's own test accuracy on real images is the ceiling to read it against. Returns
    {"agreement": fraction, "n": n, "per_class": fraction of each class's samples named right}."""
    from .fid import generate
    _conditional(netG)
    images = generate(netG, n, seed=seed + 1, device=device)
    asked = torch.arange(n) % netG.num_classes
    right = (_logits(classifier, images, device).argmax(1) == asked).float()
    per_class = torch.zeros(netG.num_classes).index_add_(0, asked, right) / torch.bincount(
        asked, minlength=netG.num_classes).clamp(min=1)
    return {"agreement": right.mean().item(), "n": n, "per_class": per_class.tolist()}


def evenly_spaced(values: list, k: int) -> list:
    """At most ``k`` items of ``values``, evenly spaced, always with the first and last."""
    if len(values) <= k:
        return list(values)
    idx = np.unique(np.round(np.linspace(0, len(values) - 1, k)).astype(int))
    return [values[i] for i in idx]


def seed_spread(values) -> tuple[float, float]:
    """Mean and sample std of one number over seeds (std is nan below two seeds)."""
    v = np.asarray(list(values), dtype=float)
    return float(v.mean()) if len(v) else float("nan"), float(v.std(ddof=1)) if len(v) > 1 else float("nan")


def within_spread(value: float, values) -> bool:
    """Whether ``value`` lies within the mean ± 2 std of ``values`` (one number over seeds)."""
    m, sd = seed_spread(values)
    return abs(value - m) <= 2 * sd


def seed_summary(values) -> str:
    """``over N seeds: mean M, std S`` of one number over seeds."""
    values = list(values)
    m, sd = seed_spread(values)
    n = len(values)
    return f"over {n} seed{'s' if n != 1 else ''}: mean {m:.2f}" + (f", std {sd:.2f}" if n > 1 else "")


def against_seeds(paper: float, values) -> str:
    """``seed_summary`` and whether the paper's number lies within our mean ± 2 std: the latter said only from
    three seeds on (two give no spread worth the name)."""
    values = list(values)
    m, sd = seed_spread(values)
    text = seed_summary(values)
    if len(values) < 3:
        return text + "; too few for a spread to hold the paper's number against (3 or more are planned)"
    return (text + f"; the paper's {paper} is {'inside' if within_spread(paper, values) else 'outside'} our "
            f"mean ± 2 std ({m:.2f} ± {2 * sd:.2f})")


def lever_verdict(full, label: str):
    """For a table of ``Params.lever_runs``: (score column, fp32 values, the lever's values, whether the
    lever's mean lies within fp32's mean ± 2 std), or None while the lever has no finished run. The score
    is the test accuracy, or the FID at the first snapshot scored (the paper's 46k)."""
    if full.empty or label not in set(full.recipe):
        return None
    score = "test accuracy (%)" if "test accuracy (%)" in full else [c for c in full if c.startswith("FID at")][0]
    fp32, lever = full[full.recipe == "fp32"][score], full[full.recipe == label][score]
    return score, fp32, lever, within_spread(lever.mean(), fp32)


def benchmark_records(folder: Path = BENCHMARKS) -> dict:
    """The benchmark records in ``folder`` as tables: ``speed`` (benchmarks/speed.py, one row per device),
    ``end_to_end`` (benchmarks/end_to_end.py) and ``reproduce`` (``reproduce()``), one row per file;
    ``cpu_levers`` (benchmarks/cpu_levers.py), one row per model and lever; ``gpu_lanes``
    (benchmarks/gpu_lanes.py), one row per model and number of processes; ``eval_cost``
    (benchmarks/eval_cost.py), one row per lever; ``fid_precision`` (benchmarks/fid_precision.py), one
    row per quantity, fp32 against bf16; ``fid_inference`` (benchmarks/fid_inference.py), one row per
    Inception setting."""
    import pandas as pd

    def rows(pattern, row):
        return pd.DataFrame([row(json.loads(p.read_text())) for p in sorted(Path(folder).glob(pattern))])

    def who(r):
        p = r["provenance"]
        kind = p.get("cpu_signature") if p["device"].startswith("cpu") else None   # CPUs of one name differ
        return {"device": p["device"] + (f", {kind}" if kind else ""), "date": r.get("date", "not recorded"),
                "commit": p["git_commit"][:10],
                "torch": p["versions"]["torch"]}

    def speed(r):
        c, g, f = r["results"]["classifier"], r["results"]["dcgan"], r["results"]["fid"]
        return {**who(r), "classifier naive (steps/s)": c["naive"], "classifier effcifar (steps/s)": c["effcifar"],
                "classifier ratio": c["speedup"], "DCGAN naive (steps/s)": g["naive"],
                "DCGAN effcifar (steps/s)": g["effcifar"], "DCGAN ratio": g["speedup"],
                "FID features pytorch-fid (img/s)": f["pytorch_fid_img_per_s"],
                "FID features effcifar (img/s)": f["ours_img_per_s"],
                "|FID difference|": abs(f["fid_ours"] - f["fid_pytorch_fid"])}

    def end_to_end(r):
        st = r["stages"]
        return {"profile": r["profile"], **who(r), "data": r["data"], "classifier (s)": st["classifier"]["seconds"],
                "DCGAN (s)": st["dcgan"]["seconds"], "FID (s)": st["fid"]["seconds"],
                "total (min)": r["total_seconds"] / 60}

    def levers(r, name):
        return pd.DataFrame([{"record": name, **who(r), "command": r["command"], **row} for row in r["rows"]])

    def reproduce_row(r):
        return {"profile": r["profile"], **who(r), "data": r["data"], "retrain": r["retrain"],
                **{f"{k} (s)": v for k, v in r["seconds"].items()}, "total (min)": sum(r["seconds"].values()) / 60}

    return {"speed": rows("speed-*.json", speed), "end_to_end": rows("end_to_end-*.json", end_to_end),
            "reproduce": rows("reproduce-*.json", reproduce_row),
            **{kind: pd.concat([levers(json.loads(p.read_text()), p.stem) for p in sorted(Path(folder).glob(
                f"{kind}*.json"))] or [pd.DataFrame()], ignore_index=True) for kind in ("cpu_levers", "gpu_lanes",
                                                                                        "eval_cost", "fid_precision",
                                                  "fid_inference")}}


def cpu_run_times(out: str | Path = "results", profile: str = "paper"):
    """The finished runs of ``profile`` in ``out`` that were made on a CPU: one row per run, its stage
    (classifier, dcgan, fid), wall minutes from its provenance (of training: less the time it was stopped,
    ``results.stopped_seconds``), whether it was resumed, for an FID whether
    the test set's Inception statistics were computed or came from the cache ("" for the other stages;
    "not recorded" before provenance had it), the minutes of an FID's sweep (FID against step; NaN where not
    recorded), commit and torch."""
    import pandas as pd
    rows = []
    for prov_file in sorted(Path(out).glob(f"*-{profile}-*/provenance.json")):
        prov, stage = json.loads(prov_file.read_text()), experiment_of(prov_file.parent)
        if prov.get("device", "").startswith("cpu") and stage in ("classifier", "dcgan", "fid"):
            minutes = (prov["wall_seconds"] / 60 if stage == "fid"
                       else training_minutes(prov_file.parent, prov["wall_seconds"]))
            rows.append({"run": prov_file.parent.name, "stage": stage, "minutes": minutes,
                         "resumed": bool(prov.get("resumed") or prov.get("resumed_scores")),
                         "test statistics": prov.get("reference_stats", "not recorded") if stage == "fid" else "",
                         "sweep (min)": prov.get("stage_seconds", {}).get("sweep", float("nan")) / 60,
                         "commit": prov["git_commit"][:10], "torch": prov["versions"]["torch"]})
    return pd.DataFrame(rows, columns=["run", "stage", "minutes", "resumed", "test statistics", "sweep (min)",
                                       "commit", "torch"])

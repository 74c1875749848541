# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Beyond the paper
#
# The paper reports one run of each model. This chapter collects what its single runs cannot say,
# starting with how far its headline numbers move between seeds. It trains nothing: it reads every
# finished run of this profile's config in the results folder, whatever its seed (seed *n* of the
# classifier is `python -m effcifar train-classifier --profile paper --seed n --data ...`; of the DCGAN
# and its FID, `train-dcgan` and `fid` likewise).

# %% tags=["parameters", "remove-cell"]
profile = "quick"
seed = 0
data = None
verify = True
out = "results"
device = "auto"
retrain = False
train = True
variant = ""

# %% tags=["remove-input"]
import json

import pandas as pd
from IPython.display import Markdown, display

from effcifar import report
from effcifar.results import cached

P = report.setup(globals())
PAPER = report.PAPER
SEEDS = range(10)


def finished(experiment, **fields):
    """{seed: run folder} of the finished runs of this profile's ``experiment`` config (with ``fields``)."""
    runs = {s: cached(P.config(experiment, seed=s, **fields)) for s in SEEDS}
    return {s: d for s, d in runs.items() if d is not None}


def spread(values):
    s = pd.Series(values, dtype=float)
    return s.mean(), (s.std() if len(s) > 1 else float("nan"))


def inside(paper, values):
    """Whether the paper's value lies within mean ± 2 std of ours: said only from three seeds on."""
    m, sd = spread(values)
    if len(values) < 3:
        return f"{len(values)} seed{'s' if len(values) > 1 else ''} so far: too few for a spread (3 or more are planned)"
    return (f"the paper's {paper} is {'inside' if abs(paper - m) <= 2 * sd else 'outside'} our mean ± 2 std "
            f"({m:.2f} ± {2 * sd:.2f})")


# %% [markdown]
# ## Seed noise: the classifier
# Each row a seed of the same config (data order, initialisation, crops and flips all follow the seed).

# %% tags=["remove-input"]
rows = []
for s, d in finished("classifier").items():
    m, prov = (json.loads((d / f).read_text()) for f in ("metrics.json", "provenance.json"))
    rows.append({"seed": s, "test accuracy (%)": 100 * m["test_acc"], "train accuracy (%)": 100 * m["train_acc"],
                 "final training loss": m["final_train_loss"], "device": prov["device"],
                 "wall time (min)": prov["wall_seconds"] / 60})
clf = pd.DataFrame(rows)
if clf.empty:
    display(Markdown(f"*No finished classifier run of the {P.profile} profile in `{P.out}`.*"))
else:
    display(report.table(clf, **{c: "{:.2f}".format for c in clf.columns if c not in ("seed", "device")}))
    m, sd = spread(clf["test accuracy (%)"])
    display(Markdown(f"Test accuracy over {len(clf)} seed(s): mean {m:.2f} %"
                     + (f", std {sd:.2f}" if len(clf) > 1 else "") + "; "
                     + (inside(PAPER["test_acc"], list(clf["test accuracy (%)"])) if P.profile == "paper"
                        else f"the {P.profile} profile is not the paper's budget: no comparison") + "."))

# %% [markdown]
# ## Seed noise: the DCGAN's FID
# FID of 10,000 samples against the test set at the 46,000 and 50,000-step snapshots (paper profile),
# one row per seed.

# %% tags=["remove-input"]
rows = []
for s, d in finished("dcgan").items():
    f = cached(P.config("fid", seed=s))
    fid = json.loads((f / "metrics.json").read_text()) if f is not None else None
    prov = json.loads((d / "provenance.json").read_text())
    rows.append({"seed": s, **({f"FID at {k}": v for k, v in fid["fid"].items()} if fid else {"FID": "not scored"}),
                 "samples": fid["n_samples"] if fid else 0, "device": prov["device"],
                 "training (min)": prov["wall_seconds"] / 60})
gan = pd.DataFrame(rows)
if gan.empty:
    display(Markdown(f"*No finished DCGAN run of the {P.profile} profile in `{P.out}`.*"))
else:
    display(report.table(gan))
    col = f"FID at {PAPER['fid_step']}"
    if P.profile == "paper" and col in gan:
        display(Markdown(f"FID at the paper's snapshot over {gan[col].notna().sum()} seed(s): "
                         + inside(PAPER["fid"], list(gan[col].dropna())) + "."))

# %% [markdown]
# ## Named variants of the recipe
# Each variant is a named set of config fields (`effcifar.config.VARIANTS`), trained with
# `python -m effcifar train-classifier --variant NAME ...` (or `train-dcgan`) into its own run folder,
# and shown on every page by building with the notebooks' `variant` parameter (`reproduce --variant
# NAME`). The table lists them and the seeds finished so far at this profile: each finished one is a
# row of the ablation.

# %% tags=["remove-input"]
from effcifar.config import VARIANTS  # noqa: E402

rows = []
for experiment in ("classifier", "dcgan"):
    for name, fields in VARIANTS[experiment].items():
        done = finished(experiment, variant=name)
        metric = ""
        if done and experiment == "classifier":
            accs = [100 * json.loads((d / "metrics.json").read_text())["test_acc"] for d in done.values()]
            metric = f"test accuracy {pd.Series(accs).mean():.2f} %"
        rows.append({"experiment": experiment, "variant": name, "fields": ", ".join(f"{k}={v}" for k, v in fields.items()),
                     "finished seeds": ", ".join(map(str, done)) or "none yet", "result": metric})
display(report.table(pd.DataFrame(rows)))

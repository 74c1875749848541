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
# # Published runs
#
# Every run folder in the results folder this book was built from, one row each, read from its own files
# (`config.json`, `metrics.json`, `provenance.json`; `effcifar.runs.run_table`, the same rows as
# `python -m effcifar runs --json`). The run's name gives its experiment, profile, variant and seed;
# *changes* are the config fields in which it differs from its profile's paper recipe (its variant's,
# and any `--set`); *device* names a CPU's kind, its rounding signature, where the run recorded it (since
# 2026-12-02); *wall* is the run's own wall time there; *state* is `published` for a run committed to the
# repository, `finished` for one that is not (yet). How a run is published and held to the code is the
# next page, "Publishing and replaying runs".

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
from IPython.display import Markdown, display

from effcifar import report, runs

P = report.setup(globals())
table = runs.run_table(P.out, states=("published", "finished"))
if table.empty:
    display(Markdown(f"*No finished run in this build's results folder ({P.profile} profile).*"))
table["device"] = [f"CPU, {kind}" if kind else ("CPU" if dev.startswith("cpu") else dev)
                   for dev, kind in zip(table["device"], table["cpu kind"])]
shown = ["run", "changes", "result", "device", "wall (min)", "commit", "state"]   # the name says profile, variant, seed
for experiment, rows in table.groupby("experiment", sort=False):
    display(Markdown(f"## {experiment}"))
    display(report.table(rows[shown], **{"wall (min)": "{:,.1f}".format}))
unverified = table[~table["verified data"]]
if not unverified.empty:
    display(Markdown(f"*Made on data not verified as the official CIFAR-100: {', '.join(unverified.run)}.*"))

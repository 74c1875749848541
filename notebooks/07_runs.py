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
# `python -m effcifar runs --json`). *Changes* are the config fields in which the run differs from its
# profile's paper recipe (its variant's, and any `--set`); *state* is `published` for a run committed to
# the repository, `finished` for one that is not (yet); *wall* is the run's own wall time on its device,
# *CPU kind* the rounding signature of a CPU run (recorded since 2026-12-02; blank before and on a GPU).
# How a run is published and held to the code is the next page, "Publishing and replaying runs".

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
for experiment, rows in table.groupby("experiment", sort=False):
    display(Markdown(f"## {experiment}"))
    display(report.table(rows.drop(columns=["experiment"]), **{"wall (min)": "{:,.1f}".format}))

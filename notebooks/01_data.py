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
# # CIFAR-100 at a glance
#
# CIFAR-100 has 60,000 colour images of 32x32 pixels in 100 classes: 50,000 for training and 10,000
# for testing. This page counts them, per split and per class, from the files it was given, and shows
# samples of every class. Both parts of the paper train on the training split; the classifier is tested
# on the test split, and FID compares generated images with the test split.

# %% tags=["parameters", "remove-cell"]
profile = "quick"      # paper | quick | smoke
seed = 0
data = None            # folder holding cifar-100-python/; None: $EFFCIFAR_DATA or ~/.cache/effcifar/data
verify = True          # check the canonical md5 sums (False for CIFAR-format fixtures)
out = "results"
device = "auto"
retrain = False
train = True           # False: finished runs only, nothing is trained (a published build)
variant = ""

# %% tags=["remove-input"]
import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import display
from myst_nb import glue

from effcifar import report
from effcifar.data import load_cifar100

P = report.setup(globals())

# %%
train, test = load_cifar100(P.config("classifier").data, verify=P.verify, download=True)
classes = train.classes

# %% [markdown]
# ## Counts per split

# %% tags=["remove-input"]
splits = pd.DataFrame({"split": ["train", "test"], "images": [len(train), len(test)],
                       "classes present": [int(train.labels.unique().numel()), int(test.labels.unique().numel())]})
glue("n_train", len(train), display=False)
glue("n_test", len(test), display=False)
report.table(splits)

# %% [markdown]
# ## Counts per class

# %% tags=["remove-input"]
per_class = pd.DataFrame({"class": classes,
                          "train": torch.bincount(train.labels, minlength=100).tolist(),
                          "test": torch.bincount(test.labels, minlength=100).tolist()})
summary = per_class[["train", "test"]].agg(["min", "max", "sum"]).T
display(report.table(summary.reset_index(names="split")))
wide = pd.concat([per_class.iloc[i * 25:(i + 1) * 25].reset_index(drop=True) for i in range(4)], axis=1)
report.table(wide)

# %% [markdown]
# ## Samples of every class
# The first six training images of each class, in file order (no selection).
# See {numref}`fig-classes`.

# %% tags=["remove-input"]
fig, axes = plt.subplots(10, 10, figsize=(15, 17))
for c, ax in enumerate(axes.flat):
    idx = (train.labels == c).nonzero().flatten()[:6]
    ax.imshow(report.image_grid(train.images[idx], nrow=3, padding=1))
    ax.set_title(classes[c], fontsize=8)
    ax.axis("off")
fig.suptitle("CIFAR-100: six training images per class", y=0.995)
fig.tight_layout()
glue("fig_class_samples", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_class_samples
# :name: fig-classes
#
# The first six training images of each class, in file order (no selection).
# ```

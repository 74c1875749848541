"""effcifar: a reproducible re-implementation of *Efficient CIFAR-100 Modelling*."""
from .config import make_config
from .models import Classifier, Discriminator, Generator, count_params

__all__ = ["make_config", "Classifier", "Generator", "Discriminator", "count_params"]
__version__ = "0.1.0"

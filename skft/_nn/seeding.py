"""Randomness of a fit: its own generators, and the global generator only where torch leaves no choice.

A fit draws the shuffling of its batches, its head's initial weights and its default augmentation
from ``torch.Generator`` objects of its own, seeded from ``random_state`` (the early-stopping split
uses numpy with the same seed). Nothing of that depends on, or moves, torch's global generator, so
fits running in threads of one process (joblib's threading backend, a multi-threaded Dask worker)
get what they would get one after another.

Dropout and drop-connect layers, random initialisation with ``weights=None`` and a user's
``augment`` callable can only draw from torch's global generator. A fit seeds it (the CPU one and
that of the fit's GPU) from the same seed and restores it afterwards, so serial fits are
reproducible and leave the caller's random state as it was. Threads share that generator: fits in
threads that train dropout are reproducible only with one thread per worker.
"""

import contextlib

import numpy as np
import torch


class FitGenerators:
    """The generators of one fit, each seeded from the fit's seed.

    Parameters
    ----------
    seed : int

    Attributes
    ----------
    head : torch.Generator
        Initial weights of the head's layers.
    batches : torch.Generator
        The training data loader's shuffling (and its worker processes' seeds).
    augmentation : torch.Generator
        The crops and flips of ``augment=True``.
    """

    def __init__(self, seed):
        head, batches, augmentation = np.random.SeedSequence(seed).generate_state(3, dtype=np.uint64)
        self.head = torch.Generator().manual_seed(int(head))
        self.batches = torch.Generator().manual_seed(int(batches))
        self.augmentation = torch.Generator().manual_seed(int(augmentation))


@contextlib.contextmanager
def seeded_global_generator(seed, device):
    """Seed torch's global generator for the draws only it can serve; restore it on exit.

    Parameters
    ----------
    seed : int
    device : str
        The fit's resolved device: on a GPU, that GPU's generator is seeded and restored too.
    """
    device = torch.device(device)
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(seed)
        for index in cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield


@contextlib.contextmanager
def preserved_global_random_state():
    """Leave torch's CPU generator and NumPy's global generator as they were on entry.

    For work that may draw from them without being a fit (``skft.load`` builds layers whose
    initial values are overwritten): the caller's random state is not theirs to move.
    """
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            np.random.set_state(numpy_state)

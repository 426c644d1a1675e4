"""Grid search on text with a partially frozen MiniLM: skft vs plain skorch vs compute-once-then-skorch.

The same reviews (``load_movie_reviews``, fresh vs rotten; 1,000 by default), all-MiniLM-L6-v2
with its shipped weights, the same grid (lr x batch_size, 3-fold CV, 3 epochs), for
``feature_extraction`` and ``repurpose`` with the last transformer layer trainable. The peer is a
plain skorch ``NeuralNetClassifier`` around the same blocks, given the texts tokenised once (for
free, outside its timing) and padded per batch as skft pads; the reference computes the frozen
activations once (outside its timing) and trains only the trainable part. Prints wall time, best CV
accuracy and ratios measured in this one run, then checks that with ``dropout=0`` skft's and the
peer's loss histories are equal (same head start, same batch order, same dropout draws).

Run: ``nice -n 5 python benchmarks/bench_text.py [--n 1000] [--modes feature_extraction repurpose]``
"""

import argparse
import time

import numpy as np
import torch
from _text_peers import WIDTH, PadBatch, PeerTextNetwork, frozen_states, tokenize
from sklearn.model_selection import GridSearchCV
from sklearn.utils import check_random_state

from skft import FineTunedClassifier, clear_cache
from skft._nn.network import build_head
from skft._nn.seeding import FitGenerators
from skft.datasets import load_movie_reviews

from _peers import skorch_peer

GRID = {"lr": [1e-3, 3e-3], "batch_size": [16, 32]}
EPOCHS = 3
N_BLOCKS = 7


def reviews(n, seed=0):
    """``n`` reviews, fresh and rotten shuffled together, with labels 0 (rotten) / 1 (fresh)."""
    texts, labels = load_movie_reviews()
    order = np.random.default_rng(seed).permutation(len(texts))[:n]
    return list(texts[order]), (labels[order] == "fresh").astype(np.int64)


def _timed_search(estimator, X, y):
    start = time.perf_counter()
    search = GridSearchCV(estimator, GRID, cv=3).fit(X, y)
    return time.perf_counter() - start, search.best_score_


def _skorch(module, collate=None, generator=None, **kwargs):
    return skorch_peer(
        module,
        max_epochs=EPOCHS,
        iterator_train__collate_fn=collate,
        iterator_valid__collate_fn=collate,
        iterator_train__generator=generator,
        **kwargs,
    )


def _skft(mode, **kwargs):
    return FineTunedClassifier(
        "all-MiniLM-L6-v2", mode=mode, trainable_layers=1, max_epochs=EPOCHS, random_state=0, device="cpu", **kwargs
    )


def compare(texts, labels, mode):
    n_frozen = N_BLOCKS if mode == "feature_extraction" else N_BLOCKS - 1
    clear_cache()
    skft_time, skft_score = _timed_search(_skft(mode), texts, labels)
    ids, pad = tokenize(texts)  # the peer's tokenising is free
    peer_time, peer_score = _timed_search(
        _skorch(PeerTextNetwork, PadBatch(pad), module__n_frozen=n_frozen), ids, labels
    )
    states = frozen_states(n_frozen, ids, pad)  # the reference's compute-once step is free too
    if mode == "feature_extraction":
        reference = _skorch(torch.nn.Linear, module__in_features=WIDTH, module__out_features=2)
        ref_time, ref_score = _timed_search(reference, torch.stack(list(states)), labels)
    else:
        reference = _skorch(PeerTextNetwork, PadBatch(pad), module__n_frozen=n_frozen, module__start_frozen=False)
        ref_time, ref_score = _timed_search(reference, states, labels)
    print(
        f"{mode:<18} skft {skft_time:7.1f} s ({skft_score:.3f})  peer {peer_time:7.1f} s ({peer_score:.3f})  "
        f"reference {ref_time:6.1f} s ({ref_score:.3f})  peer/skft {peer_time / skft_time:5.1f}x  "
        f"skft/reference {skft_time / ref_time:4.2f}x",
        flush=True,
    )
    return peer_time / skft_time


def same_loss_history(texts, labels, mode, lr=1e-3, batch_size=16):
    """Fit skft and the peer once with dropout=0 from the same head, batch order and dropout draws."""
    n_frozen = N_BLOCKS if mode == "feature_extraction" else N_BLOCKS - 1
    clear_cache()
    ours = _skft(mode, lr=lr, batch_size=batch_size, dropout=0.0).fit(texts, labels)
    seed = int(check_random_state(0).randint(np.iinfo(np.int32).max))  # skft's fit seed for random_state=0
    generators = FitGenerators(seed)
    head = build_head(WIDTH, (), 2, 0.0, generators.head)[-1].state_dict()  # skft's head, as skft draws it
    ids, pad = tokenize(texts)
    peer = _skorch(
        PeerTextNetwork,
        PadBatch(pad),
        generator=generators.batches,
        module__n_frozen=n_frozen,
        module__head_state=head,
        lr=lr,
        batch_size=batch_size,
    )
    peer.initialize()
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # the trainable layer's own dropout draws from the global generator, as in skft
        peer.partial_fit(ids, labels)  # fit would initialise again, drawing from the generator
    theirs = np.array(peer.history[:, "train_loss"])
    mine = np.array(ours.history_[:, "train_loss"])
    equal = np.allclose(mine, theirs, rtol=1e-4, atol=1e-5)
    print(
        f"{mode:<18} loss history, dropout=0, lr={lr}, batch_size={batch_size}: skft {np.round(mine, 5).tolist()}  "
        f"peer {np.round(theirs, 5).tolist()}  equal (rtol 1e-4): {equal}",
        flush=True,
    )
    return equal


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="reviews (default: %(default)s)")
    parser.add_argument("--modes", nargs="+", default=["feature_extraction", "repurpose"])
    parser.add_argument("--quick", action="store_true", help="200 reviews, for a smoke run")
    args = parser.parse_args()
    n = 200 if args.quick else args.n
    texts, labels = reviews(n)
    print(
        f"{n} Rotten Tomatoes reviews (fresh vs rotten), all-MiniLM-L6-v2, grid {GRID}, 3-fold CV, {EPOCHS} "
        f"epochs, {torch.get_num_threads()} threads",
        flush=True,
    )
    for mode in args.modes:
        compare(texts, labels, mode)
    for mode in args.modes:
        same_loss_history(texts, labels, mode)


if __name__ == "__main__":
    main()

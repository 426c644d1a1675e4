"""Grid search over lr x trainable_layers on a timm backbone: skft vs plain skorch.

The same real MNIST digits, timm's ``resnet18.a1_in1k`` with stand-in weights (timm's own model built
without weights, seeded, saved as safetensors: no download), 64 px, the grid ``lr`` x
``trainable_layers`` (0: the head on frozen features; 1: ``layer4`` and the head), 3-fold CV.
skft caches the frozen prefix of each distinct ``trainable_layers`` once for the whole search; the
peer is plain skorch around the same timm model, the first blocks frozen and in eval mode, images
preprocessed once up front as timm's data config says (an advantage it gets for free). Both read
the weights once per process before the clock starts. Prints wall times and the ratio measured in
this one run.

Run: ``python benchmarks/bench_grid_search_timm.py [--n 300] [--epochs 3] [--device cpu]``
"""

import argparse
import copy
import math
import os
import tempfile
import time

import timm
import torch
from safetensors.torch import save_file
from sklearn.model_selection import GridSearchCV
from torch import nn
from torchvision.transforms.v2 import functional as TF

from skft import FineTunedClassifier, clear_cache

from _peers import digits, skorch_peer

NAME = "resnet18.a1_in1k"
SIZE = 64
GRID = {"lr": [1e-3, 3e-3], "trainable_layers": [0, 1]}
#: The peer's trainable stages for each ``trainable_layers`` (skft's blocks: stem, layer1-layer4).
PEER_TRAINABLE = {0: (), 1: ("layer4",)}


def stand_in_weights(folder):
    """timm's model, seeded, saved as a safetensors file: the weights both contenders read."""
    torch.manual_seed(0)
    model = timm.create_model(NAME, pretrained=False).eval()
    path = os.path.join(folder, "stand_in.safetensors")
    save_file({key: value.contiguous() for key, value in model.state_dict().items()}, path)
    return path, model


def timm_preprocess(images, model):
    """uint8 (N, 28, 28) digits as timm's eval transform prepares them (resize, centre crop, normalise)."""
    config = timm.data.resolve_data_config({}, model=model)
    x = torch.from_numpy(images).float().div(255).unsqueeze(1).expand(-1, 3, -1, -1)
    mode = TF.InterpolationMode(config["interpolation"])
    x = TF.resize(x, [math.floor(SIZE / config["crop_pct"])], interpolation=mode, antialias=True).clamp(0, 1)
    x = TF.center_crop(x, [SIZE, SIZE])
    mean, std = torch.tensor(config["mean"]).view(1, 3, 1, 1), torch.tensor(config["std"]).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


class TimmPeer(nn.Module):
    """A copy of the timm model without its classifier and a linear head; only ``trainable`` stages train."""

    pretrained = None

    def __init__(self, trainable_layers=0, n_classes=10):
        super().__init__()
        self.model = copy.deepcopy(TimmPeer.pretrained).requires_grad_(False)
        self.model.reset_classifier(0)
        self.trainable = PEER_TRAINABLE[trainable_layers]
        for name in self.trainable:
            getattr(self.model, name).requires_grad_(True)
        self.head = nn.Linear(self.model.num_features, n_classes)

    def train(self, mode=True):
        super().train(mode)
        self.model.eval()
        for name in self.trainable:
            getattr(self.model, name).train(mode)
        for module in self.model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def forward(self, X):
        return self.head(self.model.forward_head(self.model.forward_features(X), pre_logits=True))


def timed_search(estimator, X, y, grid):
    start = time.perf_counter()
    search = GridSearchCV(estimator, grid, cv=3).fit(X, y)
    return time.perf_counter() - start, search.best_score_


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    images, labels = digits(args.n)
    with tempfile.TemporaryDirectory() as folder:
        weights, model = stand_in_weights(folder)
        TimmPeer.pretrained = model
        settings = dict(image_size=SIZE, max_epochs=args.epochs, batch_size=32, random_state=0, device=args.device)
        FineTunedClassifier(backbone=f"timm:{NAME}", weights=weights, **dict(settings, max_epochs=1)).fit(
            images[:8], labels[:8]
        )  # reads the weights once, before the clock starts
        clear_cache()
        skft = FineTunedClassifier(backbone=f"timm:{NAME}", weights=weights, mode="repurpose", **settings)
        skft_time, skft_score = timed_search(skft, images, labels, GRID)
    X = timm_preprocess(images, model)
    peer = skorch_peer(TimmPeer, max_epochs=args.epochs, batch_size=32, device=args.device)
    peer_grid = {"lr": GRID["lr"], "module__trainable_layers": GRID["trainable_layers"]}
    peer_time, peer_score = timed_search(peer, X, labels, peer_grid)
    print(
        f"{args.n} MNIST digits, timm {NAME} (stand-in weights), {SIZE} px, grid {GRID}, 3-fold CV, "
        f"{args.epochs} epochs, {torch.get_num_threads()} threads, device {args.device}\n"
        f"skft {skft_time:6.1f} s ({skft_score:.3f})  plain skorch {peer_time:6.1f} s ({peer_score:.3f})  "
        f"peer/skft {peer_time / skft_time:4.1f}x",
        flush=True,
    )


if __name__ == "__main__":
    main()

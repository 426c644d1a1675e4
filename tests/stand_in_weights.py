"""Stand-in torchvision weights: random tensors of the right architecture, where torchvision looks for them.

torchvision downloads its weights at run time, which tests cannot. A stand-in is the skeleton the
weights need (built by skft), seeded, with the BatchNorm statistics of random images, saved as plain tensors
under ``$TORCH_HOME/hub/checkpoints/<file name of the weights' URL>``. torchvision's own builder
loads it strictly, so a stand-in of the wrong architecture fails there.
"""

import os
from urllib.parse import urlparse

import pytest
import torch
from torch import nn

from skft.backbones._torchvision import (
    resolve_torchvision_weights,
    split_torchvision_model,
    torchvision_preprocessing,
    torchvision_skeleton,
)


def use_hub(monkeypatch, root):
    """Point torch's hub cache at ``root`` (empty or not); return its ``checkpoints`` folder."""
    monkeypatch.setenv("TORCH_HOME", str(root))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # torch.hub.get_dir() then reads $TORCH_HOME
    checkpoints = root / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    assert torch.hub.get_dir() == str(root / "hub")
    return checkpoints


def never_download(monkeypatch):
    """Make any download attempt fail the test."""

    def refuse(url, *args, **kwargs):
        pytest.fail(f"a download was attempted: {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def write_stand_in(checkpoints, name, weights, seed=0):
    """Save random tensors shaped as ``weights`` of torchvision model ``name``; return the state dict.

    The BatchNorm statistics are those of random images, so that the features still depend on the
    input after many layers (with arbitrary statistics, a deep random network outputs a constant).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = torchvision_skeleton(name, weights)
        _calibrate_batch_norm(name, weights, model)
    url = resolve_torchvision_weights(name, weights).url
    state = model.state_dict()
    torch.save(state, os.path.join(checkpoints, os.path.basename(urlparse(url).path)))
    return state


def _calibrate_batch_norm(name, weights, model):
    norms = [module for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average
    size = torchvision_preprocessing(name, weights).min_size
    x = torch.randn(8, 3, size, size)
    with torch.no_grad():
        for _, block in split_torchvision_model(name, model.train()).blocks:
            x = block(x)
    for norm in norms:
        norm.momentum = 0.1
    model.eval()

"""A tiny open_clip model (registered as an open_clip config), seeded, saved as a safetensors state dict."""

import json

import pytest
import torch

open_clip = pytest.importorskip("open_clip")
from safetensors.torch import save_file  # noqa: E402

NAME = "skft-tiny-ViT"
_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def register_tiny_config(folder):
    """Add the tiny model's config to open_clip's registry (from a file in ``folder``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{NAME}.json").write_text(json.dumps(_CONFIG))
    open_clip.add_model_config(str(folder))


def save_tiny_open_clip(path, seed=0):
    """Build the tiny model with seeded random tensors, save its state dict at ``path``; return it."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = open_clip.create_model(NAME).eval()
        with torch.no_grad():
            for tensor in model.state_dict().values():
                if tensor.is_floating_point():
                    tensor.add_(torch.randn_like(tensor) * 0.05)
    save_file({key: value.contiguous() for key, value in model.state_dict().items()}, str(path))
    return model

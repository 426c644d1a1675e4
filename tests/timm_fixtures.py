"""Stand-in timm weights: timm's own model built without weights, seeded and perturbed, saved as safetensors.

timm's pretrained weights download from the Hugging Face Hub, which tests cannot. A stand-in is timm's
model (with its classifier, as the Hub's files hold it), every tensor moved off its initial value (so a
block applied in the wrong place, or a tensor not loaded, changes the features), saved as a ``weights=``
file or in a temporary Hugging Face cache laid out as the Hub lays it out.
"""

import json

import pytest
import torch

timm = pytest.importorskip("timm")
from safetensors.torch import save_file  # noqa: E402

#: The smallest timm model of each family skft splits (timm's own test models).
FAMILIES = {
    "resnet": "test_resnet.r160_in1k",
    "convnext": "test_convnext.r160_in1k",
    "vit": "test_vit.r160_in1k",
    "efficientnet": "test_efficientnet.r160_in1k",
}


def stand_in_model(name, seed=0):
    """timm's ``name`` with seeded random tensors (BatchNorm statistics included), in eval mode."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = timm.create_model(name, pretrained=False)
        with torch.no_grad():
            for key, tensor in model.state_dict().items():
                if not tensor.is_floating_point():
                    continue
                if key.endswith("running_var"):
                    tensor.uniform_(0.5, 1.5)
                else:
                    tensor.add_(torch.randn_like(tensor) * 0.05)
    return model.eval()


def save_stand_in(name, path, seed=0):
    """Save the stand-in of ``name`` as a safetensors file at ``path``; return the model."""
    model = stand_in_model(name, seed)
    save_file({key: value.contiguous() for key, value in model.state_dict().items()}, str(path))
    return model


def put_in_hub_cache(cache, repo_id, name, seed=0, with_config=False):
    """Lay out the stand-in of ``name`` as the Hub's ``repo_id`` in the Hugging Face cache folder ``cache``."""
    commit = "0" * 40
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    model = save_stand_in(name, snapshot / "model.safetensors", seed)
    if with_config:
        architecture = name.split(".")[0]
        config = {"architecture": architecture, "num_classes": 1000, "pretrained_cfg": model.pretrained_cfg}
        (snapshot / "config.json").write_text(json.dumps(config, default=list))
    return model


def smooth_images(n, size, seed=0, width=None):
    """``n`` smooth RGB images (``uint8``, ``(n, 3, size, width)``, ``width=size + 8`` by default)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 5, generator=generator)
    shape = (size, size + 8 if width is None else width)
    images = torch.nn.functional.interpolate(coarse, size=shape, mode="bilinear", align_corners=True)
    return (images * 255).round().to(torch.uint8).numpy()

"""Tiny random transformers vision encoders saved to a folder, with their image processor's config."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

_VIT = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8
)
#: model_type -> the config of a tiny model of that family.
CONFIGS = {
    "vit": _VIT,
    "dinov2": dict(_VIT, intermediate_size=None, mlp_ratio=2),
    "convnext": dict(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1]),
    "swin": dict(embed_dim=8, depths=[1, 1], num_heads=[1, 2], image_size=32, patch_size=4, window_size=2),
    "clip_vision_model": _VIT,
    "siglip_vision_model": _VIT,
}
#: model_type -> the image processor transformers pairs with it, and its settings.
PROCESSORS = {
    "vit": ("ViTImageProcessor", dict(size={"height": 32, "width": 32})),
    "dinov2": ("BitImageProcessor", dict(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32})),
    "convnext": ("ConvNextImageProcessor", dict(size={"shortest_edge": 32}, crop_pct=0.875)),
    "swin": ("ViTImageProcessor", dict(size={"height": 32, "width": 32})),
    "clip_vision_model": (
        "CLIPImageProcessor",
        dict(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
    ),
    "siglip_vision_model": ("SiglipImageProcessor", dict(size={"height": 32, "width": 32})),
}


def save_tiny_vision_model(kind, folder, seed=0):
    """Save a seeded tiny ``kind`` encoder (safetensors) and its image processor to ``folder``; return both."""
    config = {key: value for key, value in CONFIGS[kind].items() if value is not None}
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = transformers.AutoModel.from_config(transformers.AutoConfig.for_model(kind, **config)).eval()
        with torch.no_grad():
            for tensor in model.state_dict().values():
                if tensor.is_floating_point():
                    tensor.add_(torch.randn_like(tensor) * 0.05)
    model.save_pretrained(folder, safe_serialization=True)
    class_name, settings = PROCESSORS[kind]
    processor = getattr(transformers, class_name)(**settings)
    processor.save_pretrained(folder)
    return model, processor


def save_tiny_clip(folder, seed=0):
    """Save a seeded tiny CLIP (both towers, safetensors), a character-level CLIP tokenizer and a 32 px processor."""
    import json
    import string

    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(string.ascii_lowercase) + [".", ",", "'"]
    vocab = {token: index for index, token in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(folder)
    tower = dict(CONFIGS["clip_vision_model"])
    text = dict(tower, vocab_size=len(vocab), max_position_embeddings=40)
    text.update(bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"], pad_token_id=len(vocab) - 1)
    config = transformers.CLIPConfig(vision_config=tower, text_config=text, projection_dim=8)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        clip = transformers.CLIPModel(config).eval()
    clip.save_pretrained(folder, safe_serialization=True)
    processor = transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor.save_pretrained(folder)
    return clip, processor, transformers.AutoTokenizer.from_pretrained(folder)


def uncalibrated():
    """Keyword arguments for the plain zero-shot rule (no fitted temperature or biases, where skft has them)."""
    from skft import FineTunedClassifier

    return {"prompt_calibration": False} if "prompt_calibration" in FineTunedClassifier().get_params() else {}

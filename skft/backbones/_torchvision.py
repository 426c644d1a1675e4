"""torchvision's classification models as skft backbones: names, weights, building, blocks, preprocessing.

Weights are loaded with ``torch.load(weights_only=True)`` (torchvision's own builders unpickle whatever
file sits in the cache), from ``<torch hub dir>/checkpoints/<file name of the weights' URL>``.

How each family is split into blocks (block count in brackets). Parameter-free layers join the block
before them; the final global pooling, dropout and classifier are dropped, and so are auxiliary classifiers.

- ResNet, ResNeXt, Wide ResNet (5): ``stem`` (conv1, bn1, relu, maxpool), ``layer1``-``layer4``.
- RegNet (5): ``stem``, ``stage1``-``stage4`` (the trunk's stages).
- EfficientNet, EfficientNetV2 (9; v2_s: 8): the children of ``features``: ``stem``, ``stage1``-``stageN``,
  ``head_conv``.
- MobileNetV2 (19), MobileNetV3 (large: 17, small: 13): the children of ``features``: ``stem``,
  ``block1``-``blockN`` (inverted residuals), ``head_conv``.
- ConvNeXt (4): ``stage1`` (stem and stage 1), ``stage2``-``stage4`` (a downsampling layer and the stage
  after it). The LayerNorm at the start of ``classifier`` stays with the classifier: the features are
  the un-normalised output of the last stage.
- Swin, Swin V2 (4): as ConvNeXt, with the final ``norm`` in ``stage4``; blocks output ``(N, H, W, C)``
  maps, pooled with ``"avg_channels_last"``.
- VGG (5), AlexNet (3): ``block1``, ... : each run of convolutions with the max-pool that ends it.
- DenseNet (5): ``stem``, ``denseblock1``-``denseblock4``, each with the transition after it; the last
  with ``norm5`` and the ReLU that ``forward`` applies.
- ViT (layers + 1; vit_b: 13): ``patch_embedding`` (patch projection, class token, position embedding,
  dropout; the ViT's own parameters), then ``encoder_layer_0``, ... (the last with ``encoder.ln``);
  pooled with ``"class_token"``.
- GoogLeNet (10): ``stem`` (the input transform when ``transform_input``, conv1-conv3 with the max-pools),
  then one block per inception module ``inception3a``-``inception5b`` (a max-pool joins the module before).
- Inception3 (12): ``stem`` (the input transform when ``transform_input``, ``Conv2d_1a_3x3``-
  ``Conv2d_4a_3x3`` with the max-pools), then one block per module ``Mixed_5b``-``Mixed_7c``.
- ShuffleNetV2 (5): ``stem`` (conv1, maxpool), ``stage2``-``stage4``, ``conv5``.
- MNASNet (8): ``stem`` (first conv and the separable conv), ``stack1``-``stack6``, ``head_conv``.
- SqueezeNet (9): ``stem`` (conv, relu, max-pool), ``fire2``-``fire9`` (a max-pool joins the Fire module
  before it). The classifier's 1x1 convolution is dropped.
- MaxViT (5): ``stem``, ``stage1``-``stage4``. The classifier's LayerNorm is dropped with it.
"""

import os
import pickle
import threading
from collections import OrderedDict
from contextlib import contextmanager
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn
from torchvision import models
from torchvision.models import regnet

from ._types import BackboneParts, Preprocessing, PretrainedWeightsMissing

#: Families whose builders turn on the input transform (ImageNet to [-1, 1] statistics) with weights.
_TRANSFORM_INPUT_MODELS = ("googlenet", "inception_v3")

#: The smallest image side whose blocks all run, where that is above skft's floor of 32 pixels
#: (measured by running the blocks of ``weights=None`` models on growing inputs).
_MIN_SIZES = {"alexnet": 63, "inception_v3": 75}
_FLOOR_MIN_SIZE = 32


def torchvision_model_names():
    """List torchvision's classification models.

    Returns
    -------
    list of str
        Sorted model names, as accepted by ``torchvision.models.get_model``.
    """
    return sorted(models.list_models(module=torchvision.models))


def resolve_torchvision_weights(name, weights):
    """Turn a weights name into torchvision's weights object.

    Parameters
    ----------
    name : str
        A torchvision model name.
    weights : str or None
        ``None``, ``"DEFAULT"``, or a weights name such as ``"IMAGENET1K_V2"`` or
        ``"ResNet50_Weights.IMAGENET1K_V2"``.

    Returns
    -------
    torchvision.models.WeightsEnum or None

    Raises
    ------
    ValueError
        When ``weights`` is not one of the model's weights names.
    """
    enum = models.get_model_weights(name)
    try:
        return enum.verify(weights)
    except (KeyError, TypeError):
        valid = [None, *enum.__members__]
        raise ValueError(
            f"weights={weights!r} is not a weights name of torchvision model {name!r}. Valid values: {valid} "
            f"(a name may also carry the prefix '{enum.__name__}.')."
        ) from None


def torchvision_weights_file(name, weights):
    """Return where the weights' file is expected in the torch hub cache.

    Parameters
    ----------
    name : str
        A torchvision model name.
    weights : str or None
        As for :func:`resolve_torchvision_weights`.

    Returns
    -------
    str or None
        ``<torch.hub.get_dir()>/checkpoints/<file name of the weights' URL>``; None for ``weights=None``.
    """
    resolved = resolve_torchvision_weights(name, weights)
    if resolved is None:
        return None
    return _cache_path(resolved)


def build_torchvision_model(name, weights, progress=False):
    """Build a torchvision model and load its weights without unpickling code.

    The model is :func:`torchvision_skeleton` with the weights' state dict loaded into it, so a
    skeleton given these tensors is this model. With ``weights=None`` nothing is read or downloaded.

    Parameters
    ----------
    name : str
        A torchvision model name.
    weights : str or None
        As for :func:`resolve_torchvision_weights`.
    progress : bool
        Show a progress bar while downloading.

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    ValueError
        When the weights are not cached and cannot be downloaded, when the cached file is refused by
        ``torch.load(weights_only=True)`` or cannot be read, or when it does not fit the architecture.
    """
    resolved = resolve_torchvision_weights(name, weights)
    model = _skeleton(name, resolved)
    if resolved is not None:
        state_dict = _load_state_dict(resolved, progress)
        try:
            model.load_state_dict(state_dict, strict=True)
        except RuntimeError as exc:
            raise ValueError(
                f"The file {_cache_path(resolved)} does not hold the weights {resolved} of {name!r}: {exc}. "
                f"Delete it and download {resolved.url} again."
            ) from exc
    return model


def torchvision_skeleton(name, weights):
    """Build the network that ``weights`` are loaded into, without reading them.

    It is made with the builder arguments torchvision's own builder sets for these weights (the
    input transform and auxiliary classifiers of GoogLeNet and Inception-v3, the image size of ViT
    and MaxViT, the number of classes), so that the weights' state dict loads into it and it then
    computes what the pretrained network computes. Its parameters are freshly initialised; it can be
    built on the ``meta`` device.

    Parameters
    ----------
    name : str
        A torchvision model name.
    weights : str or None
        As for :func:`resolve_torchvision_weights`; ``None`` gives the randomly initialised model.

    Returns
    -------
    torch.nn.Module
    """
    return _skeleton(name, resolve_torchvision_weights(name, weights))


def _skeleton(name, resolved):
    with _regnet_widths_on_cpu():
        return models.get_model(name, weights=None, **_builder_kwargs(name, resolved))


def _builder_kwargs(name, weights):
    """The arguments torchvision's builder sets when it loads ``weights`` (None: a fresh model)."""
    sized_by = weights or models.get_model_weights(name).DEFAULT
    kwargs = {}
    if name.startswith("vit_"):
        kwargs["image_size"] = sized_by.meta["min_size"][0]
    if name.startswith("maxvit_"):
        kwargs["input_size"] = sized_by.meta["min_size"]
    if name in _TRANSFORM_INPUT_MODELS:
        kwargs["init_weights"] = weights is None  # explicit: torchvision warns when it is left unset
        if weights is not None:
            kwargs.update(transform_input=True, aux_logits=True)
    if weights is not None and weights.meta["categories"] is not None:
        kwargs["num_classes"] = len(weights.meta["categories"])
    return kwargs


_REGNET_PATCH_LOCK = threading.Lock()


@contextmanager
def _regnet_widths_on_cpu():
    """Let RegNet builders run under ``torch.device("meta")``.

    They compute their stage widths with tensors and ``.tolist()``, which has no data on the meta
    device; this computes those widths on the CPU while the layers still go to the default device.
    It patches ``torchvision.models.regnet.BlockParams`` for the duration, under a lock, so that
    builds in several threads neither stack patches nor restore the wrong one.
    """
    with _REGNET_PATCH_LOCK:
        original = regnet.BlockParams.__dict__["from_init_params"]

        def on_cpu(*args, **kwargs):
            with torch.device("cpu"):
                return original.__func__(regnet.BlockParams, *args, **kwargs)

        regnet.BlockParams.from_init_params = staticmethod(on_cpu)
        try:
            yield
        finally:
            regnet.BlockParams.from_init_params = original


def _cache_path(weights):
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(weights.url).path))


def _load_state_dict(weights, progress):
    """Read the weights from the hub cache (downloading them if possible) as plain tensors."""
    path = _cache_path(weights)
    try:
        return weights.get_state_dict(progress=progress, check_hash=True, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"Refused to load {path}: it is not a plain tensor file (torch.load(weights_only=True) rejected it, "
            f"as it does files that carry pickled code). Delete it and download {weights.url} again."
        ) from exc
    except Exception as exc:
        if os.path.isfile(path):
            raise ValueError(f"Could not read {path} ({exc}). Delete it and download {weights.url} again.") from exc
        raise PretrainedWeightsMissing(
            f"The weights {weights} are not in the torch hub cache and could not be downloaded ({exc}). "
            f"On a machine with internet access, download {weights.url} and copy it to {path}."
        ) from exc


def split_torchvision_model(name, model):
    """Split a torchvision model into its blocks (see the module docstring for each family).

    The blocks hold the model's own modules and parameters, not copies.

    Parameters
    ----------
    name : str
        The model's name, for error messages.
    model : torch.nn.Module
        A model built by :func:`build_torchvision_model`.

    Returns
    -------
    BackboneParts

    Raises
    ------
    ValueError
        When the model's class is not one of torchvision's classification families.
    """
    splitter = _SPLITTERS.get(type(model))
    if splitter is None:
        raise ValueError(
            f"Cannot split {name!r}: {type(model).__name__} is not a torchvision classification family skft "
            f"knows ({sorted(cls.__name__ for cls in _SPLITTERS)})."
        )
    pooling = _POOLINGS.get(type(model), "avg")
    return BackboneParts(blocks=splitter(model), pooling=pooling)


def _sequential(parent, names):
    """The named children of ``parent`` as one ``nn.Sequential`` that keeps their names."""
    return nn.Sequential(OrderedDict((child, getattr(parent, child)) for child in names))


def _has_parameters(module):
    return next(module.parameters(), None) is not None


def _merge_parameter_free(named_modules):
    """Group ``(name, module)`` pairs so that parameter-free modules join the group before them.

    Leading parameter-free modules join the first group. Each group is named after its first module.
    """
    groups = []
    for child_name, module in named_modules:
        if not groups or (_has_parameters(module) and any(_has_parameters(m) for _, m in groups[-1])):
            groups.append([])
        groups[-1].append((child_name, module))
    return [(group[0][0], nn.Sequential(OrderedDict(group)) if len(group) > 1 else group[0][1]) for group in groups]


def _split_resnet(model):
    stem = _sequential(model, ["conv1", "bn1", "relu", "maxpool"])
    return [("stem", stem)] + [(f"layer{i}", getattr(model, f"layer{i}")) for i in range(1, 5)]


def _split_regnet(model):
    return [("stem", model.stem)] + [(f"stage{i}", stage) for i, stage in enumerate(model.trunk_output, 1)]


def _split_features(middle_name):
    """Blocks of an EfficientNet or MobileNet: ``stem``, ``<middle_name>1``..., ``head_conv``."""

    def split(model):
        stem, *middle, head_conv = model.features
        middle_blocks = [(f"{middle_name}{i}", block) for i, block in enumerate(middle, 1)]
        return [("stem", stem), *middle_blocks, ("head_conv", head_conv)]

    return split


def _split_stages_with_downsampling(model, extra=()):
    """ConvNeXt and Swin: ``features`` alternates downsampling layers (the stem first) and stages.

    ``extra`` ``(name, module)`` pairs join the last block.
    """
    children = list(model.features.named_children())
    groups = [children[index : index + 2] for index in range(0, len(children), 2)]
    groups[-1] += list(extra)
    return [(f"stage{i}", nn.Sequential(OrderedDict(group))) for i, group in enumerate(groups, 1)]


def _split_swin(model):
    return _split_stages_with_downsampling(model, extra=[("norm", model.norm)])


def _split_at_max_pools(model):
    """VGG and AlexNet: each run of convolutions in ``features`` with the max-pool that ends it."""
    groups = [[]]
    for child_name, module in model.features.named_children():
        groups[-1].append((child_name, module))
        if isinstance(module, nn.MaxPool2d):
            groups.append([])
    return [(f"block{i}", nn.Sequential(OrderedDict(group))) for i, group in enumerate(groups, 1) if group]


def _split_densenet(model):
    features = model.features
    blocks = [("stem", _sequential(features, ["conv0", "norm0", "relu0", "pool0"]))]
    for i in range(1, 4):
        blocks.append((f"denseblock{i}", _sequential(features, [f"denseblock{i}", f"transition{i}"])))
    last = OrderedDict(denseblock4=features.denseblock4, norm5=features.norm5, relu5=nn.ReLU())
    return blocks + [("denseblock4", nn.Sequential(last))]


class _VitEmbedding(nn.Module):
    """The first block of a torchvision ViT: patches, class token, position embedding, dropout.

    It holds the ViT's own parameters, not copies.

    Parameters
    ----------
    vit : torchvision.models.VisionTransformer
    """

    def __init__(self, vit):
        super().__init__()
        self.image_size = vit.image_size
        self.conv_proj = vit.conv_proj
        self.class_token = vit.class_token
        self.pos_embedding = vit.encoder.pos_embedding
        self.dropout = vit.encoder.dropout

    def forward(self, x):
        """Embed ``(N, 3, S, S)`` images as ``(N, 1 + patches, D)`` tokens."""
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f"This ViT only accepts {self.image_size}x{self.image_size} images. "
                f"Got {tuple(x.shape[-2:])}; pass image_size={self.image_size} or None."
            )
        tokens = self.conv_proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.class_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        return self.dropout(tokens + self.pos_embedding)


def _split_vit(model):
    *layers, (last_name, last) = model.encoder.layers.named_children()
    last_block = nn.Sequential(OrderedDict([(last_name, last), ("ln", model.encoder.ln)]))
    return [("patch_embedding", _VitEmbedding(model)), *layers, (last_name, last_block)]


class _InceptionInputTransform(nn.Module):
    """The input transform of GoogLeNet and Inception3 (``transform_input=True``).

    It maps images normalised with ImageNet statistics to images normalised with mean = std = 0.5,
    which the original weights expect.
    """

    def forward(self, x):
        """Renormalise ``(N, 3, H, W)`` images."""
        scale = x.new_tensor([0.229 / 0.5, 0.224 / 0.5, 0.225 / 0.5]).view(1, 3, 1, 1)
        shift = x.new_tensor([(0.485 - 0.5) / 0.5, (0.456 - 0.5) / 0.5, (0.406 - 0.5) / 0.5]).view(1, 3, 1, 1)
        return x * scale + shift


def _split_inception(model, stem_names, module_names):
    """GoogLeNet and Inception3: a stem, then each inception module (with the max-pool after it)."""
    stem = [(child, getattr(model, child)) for child in stem_names]
    if model.transform_input:
        stem.insert(0, ("transform_input", _InceptionInputTransform()))
    modules = _merge_parameter_free([(child, getattr(model, child)) for child in module_names])
    return [("stem", nn.Sequential(OrderedDict(stem))), *modules]


def _split_googlenet(model):
    stem_names = ["conv1", "maxpool1", "conv2", "conv3", "maxpool2"]
    module_names = [
        "inception3a", "inception3b", "maxpool3", "inception4a", "inception4b", "inception4c", "inception4d",
        "inception4e", "maxpool4", "inception5a", "inception5b",
    ]  # fmt: skip
    return _split_inception(model, stem_names, module_names)


def _split_inception3(model):
    stem_names = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                  "maxpool2"]  # fmt: skip
    module_names = ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                    "Mixed_7a", "Mixed_7b", "Mixed_7c"]  # fmt: skip
    return _split_inception(model, stem_names, module_names)


def _split_shufflenet(model):
    stages = [(child, getattr(model, child)) for child in ("stage2", "stage3", "stage4", "conv5")]
    return [("stem", _sequential(model, ["conv1", "maxpool"])), *stages]


def _split_mnasnet(model):
    layers = list(model.layers.named_children())
    stacks = [(f"stack{i}", module) for i, (_, module) in enumerate(layers[8:14], 1)]
    stem, head_conv = nn.Sequential(OrderedDict(layers[:8])), nn.Sequential(OrderedDict(layers[14:]))
    return [("stem", stem), *stacks, ("head_conv", head_conv)]


def _split_squeezenet(model):
    (_, stem), *fires = _merge_parameter_free(model.features.named_children())
    return [("stem", stem)] + [(f"fire{i}", fire) for i, (_, fire) in enumerate(fires, 2)]


def _split_maxvit(model):
    return [("stem", model.stem)] + [(f"stage{i}", block) for i, block in enumerate(model.blocks, 1)]


_SPLITTERS = {
    models.ResNet: _split_resnet,
    models.RegNet: _split_regnet,
    models.EfficientNet: _split_features("stage"),
    models.MobileNetV2: _split_features("block"),
    models.MobileNetV3: _split_features("block"),
    models.ConvNeXt: _split_stages_with_downsampling,
    models.SwinTransformer: _split_swin,
    models.VGG: _split_at_max_pools,
    models.AlexNet: _split_at_max_pools,
    models.DenseNet: _split_densenet,
    models.VisionTransformer: _split_vit,
    models.GoogLeNet: _split_googlenet,
    models.Inception3: _split_inception3,
    models.ShuffleNetV2: _split_shufflenet,
    models.MNASNet: _split_mnasnet,
    models.SqueezeNet: _split_squeezenet,
    models.MaxVit: _split_maxvit,
}
_POOLINGS = {models.SwinTransformer: "avg_channels_last", models.VisionTransformer: "class_token"}


def torchvision_preprocessing(name, weights):
    """Return what a torchvision model expects of its input images.

    Parameters
    ----------
    name : str
        A torchvision model name.
    weights : str or None
        As for :func:`resolve_torchvision_weights`; ``None`` uses the default weights' metadata.

    Returns
    -------
    Preprocessing
        Size (the weights' crop size), mean and std from the weights' transforms; ViT and MaxViT
        only accept their own size.
    """
    resolved = resolve_torchvision_weights(name, weights) or models.get_model_weights(name).DEFAULT
    transforms = resolved.transforms()
    size = transforms.crop_size[0]
    fixed = name.startswith(("vit_", "maxvit_"))
    return Preprocessing(
        image_size=size,
        mean=tuple(transforms.mean),
        std=tuple(transforms.std),
        min_size=size if fixed else _MIN_SIZES.get(name, _FLOOR_MIN_SIZE),
        fixed_size=fixed,
    )

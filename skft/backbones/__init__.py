"""The backbone registry: looking backbones up, building them with their weights, describing them.

Users call :func:`list_backbones`, :func:`register_backbone` and :func:`describe_backbone` (also exported by
``skft``). The other names here are the package's interface to the layers above it.
"""

from ._digest import UndescribableAttribute, module_digest
from ._registry import (
    BackboneSpec,
    RegistrationTravelsMixin,
    backbone_modality,
    get_spec,
    image_backbone_reads_prompts,
    list_backbones,
    register_backbone,
    registration_digest,
)
from ._resolving import ResolvedBackbone, resolve_backbone, weights_identity
from ._summary import BackboneSummary, describe_backbone, summarize_backbone
from ._text import TEXT_POOLINGS, TextPool, TextPreprocessing, TextState, quiet_transformers
from ._timm import timm_backbone_families
from ._types import BackboneParts, Preprocessing, PretrainedWeightsMissing
from ._weights_file import describe_mismatch

__all__ = [
    # what users call
    "describe_backbone",
    "list_backbones",
    "register_backbone",
    # the interface of this layer to the layers above
    "BackboneParts",
    "BackboneSpec",
    "BackboneSummary",
    "Preprocessing",
    "PretrainedWeightsMissing",
    "RegistrationTravelsMixin",
    "ResolvedBackbone",
    "TEXT_POOLINGS",
    "TextPool",
    "TextPreprocessing",
    "TextState",
    "UndescribableAttribute",
    "backbone_modality",
    "describe_mismatch",
    "get_spec",
    "image_backbone_reads_prompts",
    "module_digest",
    "quiet_transformers",
    "registration_digest",
    "resolve_backbone",
    "summarize_backbone",
    "timm_backbone_families",
    "weights_identity",
]

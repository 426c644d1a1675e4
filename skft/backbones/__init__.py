"""The backbone registry: building, weighting and splitting pretrained networks into blocks."""

from ._registry import (
    BackboneSpec,
    BackboneSummary,
    RegistrationTravelsMixin,
    ResolvedBackbone,
    backbone_identity,
    describe_backbone,
    get_spec,
    list_backbones,
    register_backbone,
    resolve_backbone,
    summarize_backbone,
    weights_identity,
)
from ._types import BackboneParts, Preprocessing

__all__ = [
    "BackboneParts",
    "BackboneSpec",
    "BackboneSummary",
    "Preprocessing",
    "RegistrationTravelsMixin",
    "ResolvedBackbone",
    "backbone_identity",
    "describe_backbone",
    "get_spec",
    "list_backbones",
    "register_backbone",
    "resolve_backbone",
    "summarize_backbone",
    "weights_identity",
]

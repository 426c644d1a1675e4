"""The backbone registry: building, weighting and splitting pretrained networks into blocks."""

from ._registry import (
    BackboneSpec,
    BackboneSummary,
    RegistrationTravelsMixin,
    ResolvedBackbone,
    describe_backbone,
    get_spec,
    list_backbones,
    register_backbone,
    registration_digest,
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
    "describe_backbone",
    "get_spec",
    "list_backbones",
    "register_backbone",
    "registration_digest",
    "resolve_backbone",
    "summarize_backbone",
    "weights_identity",
]

"""The backbone registry: looking backbones up, building them with their weights, describing them.

Users call :func:`list_backbones`, :func:`register_backbone` and :func:`describe_backbone` (also exported by
``skft``). The other names here are the package's interface to the layers above it.
"""

from ._registry import (
    BackboneSpec,
    RegistrationTravelsMixin,
    get_spec,
    list_backbones,
    register_backbone,
    registration_digest,
)
from ._resolving import ResolvedBackbone, resolve_backbone, weights_identity
from ._summary import BackboneSummary, describe_backbone, summarize_backbone
from ._types import BackboneParts, Preprocessing
from ._digest import module_digest
from ._text import quiet_transformers
from ._weights_file import describe_mismatch

__all__ = ["describe_backbone", "list_backbones", "register_backbone"]

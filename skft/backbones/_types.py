"""Plain data types shared by the backbone registry, the adapters and the estimators."""

from dataclasses import dataclass, field

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: How the output of a block is reduced to one feature vector per image.
#: ``"avg"``: mean over the spatial axes of an ``(N, C, H, W)`` map;
#: ``"avg_channels_last"``: mean over the spatial axes of an ``(N, H, W, C)`` map (Swin);
#: ``"class_token"``: the first token of an ``(N, L, D)`` sequence (ViT).
POOLINGS = ("avg", "avg_channels_last", "class_token")


class PretrainedWeightsMissing(ValueError):
    """The pretrained weights a backbone needs are not on this machine (and could not be downloaded)."""


@dataclass(frozen=True)
class Preprocessing:
    """What a backbone expects of its input images.

    Parameters
    ----------
    image_size : int
        The square size the weights were trained at; images are resized to it by default.
    mean, std : tuple of float
        Per-channel normalisation applied to RGB values in ``[0, 1]``.
    min_size : int
        The smallest image side the architecture accepts.
    fixed_size : bool
        True when only ``image_size`` itself works (ViT's position embeddings).
    interpolation : {"bilinear", "bicubic"}
        How images are resized (antialiased).
    crop_pct : float or None
        The centre-crop fraction: images are resized so that their shorter side is
        ``floor(image_size / crop_pct)`` and the central ``image_size`` square is kept (timm's eval
        transform; CLIP's resize-then-crop is ``1.0``). ``None`` resizes the whole image to the square.
    """

    image_size: int
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    min_size: int = 32
    fixed_size: bool = False
    interpolation: str = "bilinear"
    crop_pct: float = None

    def check_image_size(self, image_size, backbone_name):
        """Raise a ``ValueError`` when ``image_size`` is outside what the backbone accepts.

        Parameters
        ----------
        image_size : int
            The requested square input size.
        backbone_name : str
            Used in the message.
        """
        if self.fixed_size and image_size != self.image_size:
            raise ValueError(
                f"image_size={image_size!r} does not fit backbone {backbone_name!r}, which only accepts "
                f"{self.image_size}x{self.image_size} images. Pass image_size=None or {self.image_size}."
            )
        if image_size < self.min_size:
            raise ValueError(
                f"image_size={image_size!r} is too small for backbone {backbone_name!r}, which needs at least "
                f"{self.min_size} pixels. Pass image_size>={self.min_size} (None uses {self.image_size})."
            )


@dataclass
class BackboneParts:
    """A network split into its ordered blocks.

    Parameters
    ----------
    blocks : list of (str, nn.Module)
        Block names (valid Python identifiers) and modules, applied in order.
    pooling : str
        One of :data:`POOLINGS`: how a block's output becomes one feature vector.
    embed_texts : callable or None
        For an image backbone with a text tower (CLIP, SigLIP): ``embed_texts(texts) -> Tensor``, the
        texts embedded in the space of the full-depth image features (what ``mode="prompt"`` compares).
    """

    blocks: list = field(default_factory=list)
    pooling: str = "avg"
    embed_texts: object = None

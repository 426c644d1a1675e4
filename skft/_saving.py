"""Saving a fitted estimator to a model file and rebuilding it from one.

Each estimator class declares what it stores besides its network and history
(``_saved_attributes``) and rebuilds itself through the same ``_build_network`` that ``fit`` uses,
from the backbone's skeleton for the saved ``weights`` (the architecture those weights need; nothing
is read or downloaded); the saved tensors are then copied in. ``skft.load`` (:mod:`skft._load`) only
picks the class a file names.

Parameters are stored as plain values. What is not one (an ``nn.Module`` backbone, callbacks, a
``RandomState``, an optimizer class outside ``torch.optim``) is refused at save time with a
``TypeError`` naming the parameter, rather than dropped: nothing a user saved is silently lost.

A file is untrusted input: nothing read from it becomes a cache key or a path, and no number in it
may exhaust the machine. Loading restores ``cache_dir`` as None (a file cannot choose where skft
writes; set it again with ``set_params``), ``num_workers`` as 0, and refuses a ``batch_size`` above
:data:`MAX_BATCH_SIZE` or an image size above :data:`MAX_IMAGE_SIZE`. The activation-cache key of a
loaded model is computed from its rebuilt network, never read from the file (the ``prefix_key_``
that files of earlier versions hold is ignored).

For a text backbone the file's ``preprocessing`` holds the tokenizer's identity (the digest of its
files, class and lower-casing) and ``max_length``, never the tokenizer itself: loading reads the
tokenizer from the backbone's package or directory, as ``fit`` did, and refuses a file whose
tokenizer identity differs from the one found there.
"""

from numbers import Integral

import torch
from sklearn.utils.validation import check_is_fitted
from skorch.history import History

from ._card import write_model_card
from ._nn.assembly import select_blocks
from ._nn.device import resolve_device
from ._nn.lora import merge_adapters
from ._nn.model_file import from_json, history_to_json, plain_tensors, to_json, write_model_file
from ._nn.network import TextInput
from ._nn.regularizers import snapshot_trainable
from .backbones import PretrainedWeightsMissing, describe_mismatch, module_digest, resolve_backbone

#: The largest ``batch_size`` a model file may set.
MAX_BATCH_SIZE = 4096
#: The largest ``image_size`` or ``image_size_`` (pixels per side) a model file may set.
MAX_IMAGE_SIZE = 2048
#: Parameters a file cannot set: restored as these values.
RESET_AT_LOAD = {"cache_dir": None, "num_workers": 0}

_FIXES = {
    "backbone": "Register your network with skft.register_backbone(name, builder) and fit with backbone=name",
    "callbacks": "They only act during fit: remove them before saving, est.set_params(callbacks=None).save(path)",
    "random_state": "Pass an int or None",
    "optimizer": "Pass 'adamw', 'adam', 'sgd' or a class from torch.optim (stored by name)",
}


class SavedAsModelFile:
    """``save`` and the rebuild behind ``skft.load``, for an estimator that declares ``_saved_attributes``.

    Only a class that declares ``_saved_attributes`` itself can be saved (a subclass of it cannot:
    loading would rebuild the parent class).
    """

    #: Fitted attributes stored besides the network's tensors and ``history_``.
    _saved_attributes = ("image_size_", "backbone_name_", "block_names_", "n_frozen_blocks_", "drift_")
    #: Fitted attributes added since files were first written, with the value a file without them means.
    _older_files_fitted = {}

    def save(self, path, *, full=False, card=False):
        """Save the fitted estimator to one file that loading can never run code from.

        The file is a safetensors file: the network's weights as tensors, and in its metadata, as JSON,
        the parameters, the fitted attributes (classes, target scaling, preprocessing, history), the
        skft version and the backbone's identity. Read it back with :func:`skft.load`. The write is
        atomic: an interrupted save leaves any previous file at ``path`` intact.

        By default the file stores only what the fit changed: the head, the blocks that trained (for
        ``mode="lora"`` their adapters, for ``mode="prompt"`` the prompt vectors and class prompt
        embeddings) and the digest of the pretrained weights. Loading rebuilds the rest from the
        backbone's registry and weights, and refuses to load when their digest differs. Such a file
        is kilobytes to a few megabytes; ``full=True`` writes every tensor, for a machine that will not
        have the pretrained weights (e.g. torchvision's, downloaded on first use). A model fitted
        from ``weights=None`` is always saved in full.

        Parameters
        ----------
        path : str or path-like
            Where to write, e.g. ``"model.skft"``.
        full : bool, default=False
            Store every tensor of the network, so that loading needs no pretrained weights.
        card : bool or dict, default=False
            Also write a model card beside the file (``model.skft`` -> ``model.md``, Hugging Face's
            format: YAML front matter, then Markdown; with matplotlib, the learning curves as a
            PNG beside it). A dict writes it with more: ``{"evaluation": (X, y)}``, held-out data
            the card scores the model on (with a confusion matrix for a classifier), and
            ``{"scores": {"5-fold CV accuracy": 0.93}}``, scores known from elsewhere. Needs
            huggingface_hub (``pip install 'skft[card]'``).

        Returns
        -------
        self

        Raises
        ------
        TypeError
            When a parameter is not a plain value (an ``nn.Module`` backbone, callbacks, a
            ``RandomState``, an optimizer class outside ``torch.optim``); the message names it.
            pickle and joblib store such estimators, for files you trust.
        """
        check_is_fitted(self)
        if "_saved_attributes" not in vars(type(self)):
            raise TypeError(
                f"save supports skft's own estimators, not subclasses of them. Got {type(self).__qualname__}. Use "
                "pickle or joblib for files you trust."
            )
        document = {
            "estimator": type(self).__name__,
            "params": {key: to_json(value, key, _FIXES.get(key)) for key, value in self.get_params(deep=False).items()},
            "fitted": {key: to_json(getattr(self, key), key) for key in self._saved_attributes + ("lr_",)},
            "preprocessing": _saved_preprocessing(self.net_.module_.normalizer),
            "history": history_to_json(self.history_),
        }
        network = self.net_.module_
        tensors = plain_tensors(network.state_dict())
        if not full and self.weights is not None:
            pretrained = _pretrained_blocks(self)
            unchanged = _unchanged_frozen_blocks(network, dict(pretrained))
            tensors = {key: tensors[key] for key in _stored_tensor_names(network, unchanged)}
            document["pretrained"] = {"digest": module_digest(pretrained)}
        write_model_file(path, tensors, document)
        if card is not False:
            if card is not True and not (isinstance(card, dict) and set(card) <= {"evaluation", "scores"}):
                raise ValueError(
                    f"card must be True, False or a dict with keys 'evaluation' and/or 'scores'. Got {card!r}."
                )
            digest = document.get("pretrained", {}).get("digest")
            if digest is None and self.weights is not None:
                digest = module_digest(_pretrained_blocks(self))
            write_model_card(self, path, weights_digest=digest, **({} if card is True else card))
        return self

    @classmethod
    def _from_model_file(cls, tensors, document, path, device=None):
        """Rebuild the estimator a model file describes; see :func:`skft.load`.

        Parameters
        ----------
        tensors : dict of str to Tensor
        document : dict
            The file's JSON document, its format already checked.
        path : str
            For messages.
        device : str or None
            Where the loaded network runs; None follows the saved ``device`` parameter.

        Returns
        -------
        estimator
            Fitted.
        """
        try:
            params = {key: from_json(value) for key, value in document["params"].items()}
            estimator = cls(**{**params, **RESET_AT_LOAD})
            estimator._validate_params()
            fitted = {**cls._older_files_fitted, **document["fitted"]}
            saved = {key: from_json(fitted[key]) for key in cls._saved_attributes}
            vars(estimator).update(saved)
            preprocessing = document["preprocessing"]
            text = "tokenizer_digest" in preprocessing
            normalisation = None if text else {key: tuple(preprocessing[key]) for key in ("mean", "std")}
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"model file {path!r} has damaged or foreign parameters ({type(error).__name__}: {error}). Save the "
                "model again."
            ) from None
        _check_sizes(estimator, path)
        pretrained = document.get("pretrained")
        network = _rebuild(estimator, normalisation, saved, path, read_weights=pretrained is not None)
        if pretrained is not None:
            # Built with the pretrained weights, the frozen blocks hold the process's kept tensors: the file's
            # tensors (and merged adapters) must go into copies, and the loaded estimator owns what it exposes.
            network.own_frozen_blocks()
        if text:
            _check_tokenizer(network.normalizer, preprocessing, estimator.backbone, path)
        if pretrained is None:
            # Every tensor is in the file; a LoRA model's weights are merged: mark its fresh (zero) adapters merged.
            merge_adapters(network)
            _load_tensors(network, tensors, network.state_dict(), estimator.backbone, path)
        else:
            _check_pretrained_digest(estimator, pretrained, path)
            state = network.state_dict()
            frozen = {name for name, _ in list(network.backbone.named_children())[: network.n_frozen]}
            required = _stored_tensor_names(network, frozen)
            _load_tensors(
                network,
                tensors,
                {key: state[key] for key in set(tensors) | set(required) if key in state},
                estimator.backbone,
                path,
            )
            # The adapters came from the file, the weights from the pretrained ones: add them up as fit did.
            merge_adapters(network)
        estimator.prefix_key_ = estimator._prefix_key(network)
        estimator.trainable_layers_ = network.n_blocks_after_prefix
        estimator.n_trainable_params_ = network.n_trainable_parameters()
        # Files written before lr_ was stored resolve it as their fit did (the defaults then may have differed).
        fitted = document["fitted"]
        estimator.lr_ = float(fitted["lr_"]) if "lr_" in fitted else estimator._resolved_lr()
        device = resolve_device(estimator.device if device is None else device)
        net = estimator._make_net(network, None, 0, device, snapshot_trainable(network))
        net.initialize()
        net.history = History(document.get("history", []))
        estimator.net_ = net
        estimator.history_ = net.history
        return estimator


def _rebuild(estimator, normalisation, saved, path, read_weights):
    """The fitted network's architecture, built as ``fit`` built it (reading the pretrained weights or not)."""
    backbone = estimator.backbone
    try:
        network = estimator._build_network(read_weights=read_weights, normalisation=normalisation)
    except (PretrainedWeightsMissing, FileNotFoundError) as error:
        raise ValueError(
            f"model file {path!r} stores only what its fit changed, so it needs the pretrained weights of backbone "
            f"{backbone!r}, which cannot be read here: {error}. Make them available, or save the model again with "
            "save(path, full=True) where they are: that file holds every weight and loads anywhere."
        ) from None
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"model file {path!r} needs backbone {backbone!r}, which cannot be built here: {error}. Register the "
            "backbone (skft.register_backbone) as it was when the model was saved, then load again."
        ) from None
    built = {key: getattr(estimator, key) for key in ("block_names_", "n_frozen_blocks_", "image_size_")}
    expected = {key: saved[key] for key in built}
    if built != expected:
        raise ValueError(
            f"model file {path!r} was made for another backbone: it has {expected} but backbone {backbone!r} builds "
            f"{built} here. Register {backbone!r} as it was when the model was saved."
        )
    return network


def _load_tensors(network, tensors, expected, backbone, path):
    """Copy a file's tensors into ``network``, refusing names or shapes other than ``expected``'s."""
    problem = describe_mismatch(expected, tensors, source="the file", target=f"backbone {backbone!r} as built here")
    if problem is not None:
        raise ValueError(
            f"model file {path!r} was made for another backbone: {problem}. Register {backbone!r} as it was when the "
            "model was saved."
        )
    network.load_state_dict(tensors, strict=len(expected) == len(network.state_dict()))


def _pretrained_blocks(estimator):
    """The pretrained blocks (up to ``feature_layer``) the estimator's backbone and weights give in this process."""
    resolved = resolve_backbone(
        estimator.backbone, estimator.weights, image_size=estimator.image_size, share_modules=True
    )
    return select_blocks(resolved.parts.blocks, estimator.feature_layer, resolved.name)


def _unchanged_frozen_blocks(network, pretrained):
    """Names of the frozen blocks whose tensors equal the pretrained ones (a continued fit may have changed some)."""
    return {
        name
        for name, block in list(network.backbone.named_children())[: network.n_frozen]
        if _same_tensors(block.state_dict(), pretrained[name].state_dict())
    }


def _same_tensors(state, other):
    return state.keys() == other.keys() and all(
        torch.equal(state[key], other[key].to(state[key].device)) for key in state
    )


def _stored_tensor_names(network, unchanged_blocks):
    """What a file that stores only what changed holds: all but ``unchanged_blocks`` and frozen parts of the rest.

    In blocks that train only some of their tensors (LoRA adapters, prompt vectors), only those are
    stored: the others are the pretrained ones (for LoRA, before the adapters are merged in).
    """
    names = []
    for key in network.state_dict():
        _, block, rest = key.split(".", 2) if key.startswith("backbone.") else (None, None, None)
        if block is None:
            names.append(key)
        elif block not in unchanged_blocks and (network.trains_only is None or network.trains_only(rest)):
            names.append(key)
    return names


def _check_pretrained_digest(estimator, stored, path):
    """Refuse a file that stores only what changed when the pretrained weights here are not those it was fit on."""
    found = module_digest(_pretrained_blocks(estimator))
    if stored.get("digest") != found:
        raise ValueError(
            f"model file {path!r} stores only what its fit changed, on top of pretrained weights with digest "
            f"{stored.get('digest')!r}, but backbone={estimator.backbone!r} with weights={estimator.weights!r} gives "
            f"{found!r} here. Load it where the backbone and weights are those it was fit with, or save it again with "
            "save(path, full=True), which needs no pretrained weights."
        )


def _saved_preprocessing(normalizer):
    """What a model file keeps of the network's input side: mean and std, or the tokenizer's identity."""
    if isinstance(normalizer, TextInput):
        return {"tokenizer_digest": normalizer.preprocessing.tokenizer_digest, "max_length": normalizer.max_length}
    return {"mean": normalizer.mean.flatten().tolist(), "std": normalizer.std.flatten().tolist()}


def _check_tokenizer(text_input, saved, backbone, path):
    """Refuse a text model whose tokenizer, as found here, is not the one it was trained with."""
    found = {"tokenizer_digest": text_input.preprocessing.tokenizer_digest, "max_length": text_input.max_length}
    if saved != found:
        raise ValueError(
            f"model file {path!r} was trained with another tokenizer or max_length than backbone {backbone!r} has "
            f"here: the file has {saved}, the backbone's files give {found}. Load it where the backbone's tokenizer "
            "files are those it was saved with (the same package version or model directory)."
        )


def _check_sizes(estimator, path):
    """Refuse numbers a file could use to exhaust memory at predict time."""
    limits = (("batch_size", MAX_BATCH_SIZE), ("image_size", MAX_IMAGE_SIZE), ("image_size_", MAX_IMAGE_SIZE))
    for field, limit in limits:
        value = getattr(estimator, field)
        if value is not None and not (isinstance(value, Integral) and 1 <= value <= limit):
            raise ValueError(
                f"model file {path!r} sets {field}={value!r}; skft loads models with {field} from 1 to {limit}. "
                "The file is damaged or was crafted; save the model again."
            )

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
:data:`skft._file_sizes.MAX_BATCH_SIZE` or an image size above :data:`skft._file_sizes.MAX_IMAGE_SIZE`;
the numbers that size tensors or strings are checked against the file's tensors before the rebuild
(:mod:`skft._file_sizes`). A file
that stores only what its fit changed records per block the digest of the pretrained tensors it
leaves out (:mod:`skft._nn.pretrained_base`); loading refuses it when they differ. The activation-cache key of a
loaded model is computed from its rebuilt network, never read from the file (the ``prefix_key_``
that files of earlier versions hold is ignored).

For a text backbone the file's ``preprocessing`` holds the tokenizer's identity (the digest of its
files, class and lower-casing) and ``max_length``, never the tokenizer itself: loading reads the
tokenizer from the backbone's package or directory, as ``fit`` did, and refuses a file whose
tokenizer identity differs from the one found there.
"""

import hashlib
import json

from sklearn.utils.validation import check_is_fitted
from skorch.history import History

from ._card import write_model_card
from ._file_sizes import check_file_sizes
from ._nn.device import resolve_device
from ._nn.lora import as_plain_layers, merge_adapters, peft_available
from ._nn.model_file import from_json, history_to_json, plain_tensors, to_json, write_model_file
from ._nn.network import TextInput
from ._nn.pretrained_base import differing_blocks, kept_base
from ._nn.regularizers import snapshot_trainable
from .backbones import PretrainedWeightsMissing, describe_mismatch, get_spec, weights_identity

#: What ``save(path, card={...})`` may pass on to the model card.
CARD_KEYS = frozenset({"evaluation", "scores"})
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
        embeddings) and, per block, the digest of the pretrained tensors it leaves out (the frozen
        blocks, the base weights under LoRA adapters, the encoder around prompt vectors), taken when
        the fit started. Loading rebuilds the rest from the backbone's registry and weights, and
        refuses to load when a digest differs. Such a file is kilobytes to a few megabytes;
        ``full=True`` writes every tensor, for a machine that will not have the pretrained weights
        (e.g. torchvision's, downloaded on first use). A model fitted from ``weights=None``, and one
        without a record of its pretrained base (loaded from a full file, or fitted by an earlier
        skft), is always saved in full.

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
        ValueError
            Without ``full=True``, when the weights file the model was fitted from no longer exists:
            such a file could never be loaded.
        """
        check_is_fitted(self)
        if card is not True and card is not False and not (isinstance(card, dict) and set(card) <= CARD_KEYS):
            raise ValueError(
                f"card must be True, False or a dict with keys 'evaluation' and/or 'scores'. Got {card!r}."
            )
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
        recorded = getattr(self, "_base_digests", None)
        if not full and self.weights is not None and recorded is not None:
            _check_weights_exist(self, path)
            kept = kept_base(network, recorded)
            tensors = {key: tensors[key] for key in _stored_tensor_names(network, kept)}
            document["pretrained"] = {"blocks": kept}
        write_model_file(path, tensors, document)
        if card is not False:
            write_model_card(self, path, weights_digest=_base_digest(document), **({} if card is True else card))
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
        check_file_sizes(estimator, tensors, path)
        pretrained = document.get("pretrained")
        recorded = None if pretrained is None else _recorded_base(pretrained, path)
        # A full file holds a LoRA model's weights with the adapters merged in: without peft, plain layers run it.
        adapters = pretrained is not None or estimator.mode != "lora" or peft_available()
        if not adapters:
            tensors = as_plain_layers(tensors)
        network = _rebuild(
            estimator, normalisation, saved, path, read_weights=pretrained is not None, adapters=adapters
        )
        if pretrained is not None:
            _check_base(estimator, network, recorded, path)
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
            state = network.state_dict()
            required = _stored_tensor_names(network, recorded)
            _load_tensors(
                network,
                tensors,
                {key: state[key] for key in set(tensors) | set(required) if key in state},
                estimator.backbone,
                path,
            )
            # The adapters came from the file, the weights from the pretrained ones: add them up as fit did.
            merge_adapters(network)
        estimator._base_digests = recorded
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


def _rebuild(estimator, normalisation, saved, path, read_weights, adapters):
    """The fitted network's architecture, built as ``fit`` built it (reading the pretrained weights or not)."""
    backbone = estimator.backbone
    try:
        network = estimator._build_network(
            read_weights=read_weights,
            normalisation=normalisation,
            adapters=adapters,
            n_frozen=saved["n_frozen_blocks_"],
        )
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
    # n_frozen_blocks_ needs no comparison: the network was built with the file's own count.
    built = {key: getattr(estimator, key) for key in ("block_names_", "image_size_")}
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


def _stored_tensor_names(network, base_blocks):
    """What a file that stores only what changed holds: all but the tensors of ``base_blocks`` it leaves out.

    A frozen block in ``base_blocks`` is left out whole; in one after the frozen prefix (LoRA adapters,
    prompt vectors: ``network.trains_only``) only what trains is stored, the others are the pretrained
    ones (for LoRA, before the adapters are merged in). Blocks not in ``base_blocks`` are stored whole.
    """
    after_prefix = {name for name, _ in list(network.backbone.named_children())[network.n_frozen :]}
    names = []
    for key in network.state_dict():
        _, block, rest = key.split(".", 2) if key.startswith("backbone.") else (None, None, None)
        trains = block in after_prefix and network.trains_only is not None and network.trains_only(rest)
        if block not in base_blocks or trains:
            names.append(key)
    return names


def _check_weights_exist(estimator, path):
    """Refuse to write a changes-only file whose pretrained weights file is gone: it could never load."""
    spec = get_spec(estimator.backbone) if isinstance(estimator.backbone, str) else None
    identity = weights_identity(estimator.weights, spec)
    if identity[0] == "file" and len(identity) == 2:
        raise ValueError(
            f"cannot save {path!r} with only what the fit changed: the pretrained weights it was fitted from, "
            f"{identity[1]!r} (backbone={estimator.backbone!r}, weights={estimator.weights!r}), no longer exist, so "
            "such a file could never be loaded. Save it with save(path, full=True), which stores every tensor."
        )


def _recorded_base(pretrained, path):
    """The per-block digests of the base a changes-only file leaves out, as the file records them."""
    blocks = pretrained.get("blocks") if isinstance(pretrained, dict) else None
    if not isinstance(blocks, dict) or not all(isinstance(v, str) for v in blocks.values()):
        raise ValueError(
            f"model file {path!r} stores only what its fit changed but no per-block record of the pretrained weights "
            "it needs (an skft before model format 3 wrote it, or it is damaged), so loading cannot prove its base. "
            "Load it with the skft that saved it and save it again with save(path, full=True)."
        )
    return blocks


def _check_base(estimator, network, recorded, path):
    """Refuse a changes-only file when the pretrained tensors built here are not those its fit started from."""
    differing = differing_blocks(recorded, network)
    if differing:
        raise ValueError(
            f"model file {path!r} stores only what its fit changed, on top of pretrained weights that differ from "
            f"those backbone={estimator.backbone!r} with weights={estimator.weights!r} gives here: the tensors of "
            f"block(s) {differing} are not those the fit started from (the weights were updated since, or are "
            "another version). Load it where the backbone and weights are those it was fitted with, or save it "
            "again with save(path, full=True) there: that file needs no pretrained weights."
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


def _base_digest(document):
    """One digest of the pretrained base a changes-only file leaves out (its per-block digests), or None."""
    blocks = document.get("pretrained", {}).get("blocks")
    if not blocks:
        return None
    return hashlib.blake2b(json.dumps(blocks, sort_keys=True).encode(), digest_size=16).hexdigest()

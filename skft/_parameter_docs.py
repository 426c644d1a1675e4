"""The documentation of the parameters and fitted attributes every fine-tuning estimator shares.

:class:`skft.FineTunedClassifier` and :class:`skft.FineTunedRegressor` take the same parameters (the
classifier adds two); their docstrings hold ``{parameters}`` and ``{attributes}`` where
:func:`document_shared` puts these texts, so that each class documents every parameter of its own
without a copied block.
"""

#: The Parameters entries of every fine-tuning estimator, in numpydoc form (4-space indented).
SHARED_PARAMETERS = """\
    backbone : str or nn.Module, default="efficientnet_lite0"
        A name from :func:`skft.list_backbones` (the default ships its ImageNet weights and works
        offline; torchvision names need their weights in the torch hub cache), or your own network.
    weights : str, path or None, default="DEFAULT"
        ``"DEFAULT"``, a torchvision weights name, ``None`` (random initialisation) or a path to a
        ``.pth``/``.pt``/``.safetensors`` state dict.
    mode : {"full", "feature_extraction", "repurpose", "lora", "prompt"}, default="repurpose"
        What trains: every block; only the head; the last ``trainable_layers`` blocks and the head;
        low-rank adapters on the last ``trainable_layers`` blocks and the head (the pretrained
        weights frozen; ``pip install 'skft[lora]'``); or (classifiers of texts only) nothing but
        the classifier's ``prompt_tokens`` input vectors, each text getting the class whose prompt
        it is most similar to (docs/modes.md).
    trainable_layers : int, "auto" or None, default="auto"
        With ``mode="repurpose"`` or ``"lora"``: how many blocks, counted back from
        ``feature_layer``, train (``"lora"``: get adapters; None or 0 there means every block).
        ``"auto"``: the backbone's measured value (3 for ``efficientnet_lite0``, 2 for
        ``all-MiniLM-L6-v2``, and its 6 transformer layers, all but the embeddings, when a
        classifier's head starts from the class prompts and the rarest class has at most 256
        examples; 2 for a backbone without one), see
        ``docs/defaults.md``; the fit reports it as ``trainable_layers_``.
    feature_layer : int, default=-1
        The block whose pooled output feeds the head; later blocks are dropped.
    head : tuple of int, default=()
        Hidden sizes of layers added before the output layer (each Linear, ReLU, Dropout).
    dropout : float, default=0.0
        Dropout rate in the head.
    lr : float or "auto", default="auto"
        Learning rate of the optimizer for the head and the trainable blocks (see ``lr_decay`` and
        ``head_lr_scale`` for per-block rates). ``"auto"``: the value measured for the backbone and
        ``mode`` (``efficientnet_lite0``: 3e-3 for ``feature_extraction``, 3e-4 for ``repurpose``
        and ``full``, 1e-3 for ``lora`` and for ``full`` with ``weights=None``;
        ``all-MiniLM-L6-v2``: 1e-2, 1e-4, 2e-5 and 1e-3, and 5e-5 for ``repurpose`` when the head
        starts from the class prompts and the rarest class has at most 256 examples; a backbone
        without measured values gets conservative ones, 1e-4 for ``full``), see ``docs/defaults.md``;
        the fit reports it as ``lr_``.
    batch_size : int, default=32
        Images or texts per training step; prediction and the frozen prefix use larger batches.
    max_epochs : int or "auto", default=10
        Passes over the training data (fewer when ``early_stopping`` ends the fit). ``"auto"``:
        enough passes for at least 100 optimizer steps, and at least 10 (small data trains in
        steps, not epochs; see ``docs/defaults.md``). Resolved as ``max_epochs_``.
    optimizer : {"adamw", "adam", "sgd"} or torch optimizer class, default="adamw"
        ``"sgd"`` uses momentum 0.9.
    weight_decay : float, default=1e-4
        Decoupled weight decay (AdamW) or L2 penalty (Adam, SGD) of every trained parameter.
    image_size : int or None, default=None
        Side of the square images the network sees; ``None``: the backbone's own size (224 for
        the default). Smaller is much faster. Images of any size, smaller ones too, are resized
        to it; ``image_size`` itself must be one the backbone accepts (see
        :func:`skft.describe_backbone`: at least 32 for EfficientNet-Lite). Image backbones only:
        a text backbone refuses it.
    max_length : int or None, default=None
        Text backbones: tokens per text (special tokens included) beyond which a text is
        truncated, with a warning; ``None``: the backbone's own (256 for ``"all-MiniLM-L6-v2"``).
        Batches are padded to their own longest text, not to ``max_length``. An image backbone
        refuses it.
    augment : bool or callable, default=False
        Random changes to training images, drawn anew each epoch: ``True`` crops a random 70-100%
        of each image (resized back to ``image_size``) and flips half of them left to right, which
        is wrong where orientation matters (digits, text): pass your own instead, a callable or
        torchvision transform that takes and returns one ``(C, H, W)`` tensor (``uint8``, or
        ``float32`` in ``[0, 1]``), e.g. ``torchvision.transforms.v2.RandomRotation(10)``. Only
        training batches are augmented: never the early-stopping split, never predictions.
    num_workers : int, default=0
        Processes that read image files (or PIL images, or arrays of different sizes) and augment
        them while the network trains; 0 does it in this process.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` (stratified) and stop after ``n_iter_no_change`` epochs
        without improvement of the validation loss, restoring the best weights.
    validation_fraction : float, default=0.1
        With ``early_stopping``: the share of the training data held out to monitor the loss.
    n_iter_no_change : int, default=5
        With ``early_stopping``: epochs without a better validation loss before the fit stops.
    device : str, default="auto"
        ``"auto"`` uses CUDA when available; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` pick one.
        ``"accelerate"`` trains through Hugging Face Accelerate (``pip install 'skft[accelerate]'``):
        started with ``accelerate launch`` or ``torchrun`` on several GPUs, one fit is spread over
        them, each process training on its share of every epoch's batches (docs/scaling.md).
    random_state : int, RandomState or None, default=None
        Seeds head initialisation, shuffling, augmentation, dropout and the validation split.
        Each fit draws from generators of its own, never reading or moving torch's global random
        state, so fits in threads equal fits one after another; except dropout and drop-connect
        (and ``weights=None`` initialisation, a callable ``augment``), which only torch's global
        generator can serve: a fit seeds it and restores it afterwards, but threads share it, so
        fits in threads that train dropout are reproducible only with one thread per worker.
    verbose : int, default=0
        ``0`` is silent; ``1`` prints skorch's table of epochs (with ``early_stopping``: the
        validation loss, a classifier's validation accuracy too, down to the epoch that stopped the fit).
    callbacks : list of skorch callbacks or None, default=None
        Extra callbacks for the skorch net (copied on every fit).
    cache_dir : str, path or None, default=None
        A folder for the frozen-prefix activation cache, shared by parallel workers (see the README).
    lr_decay : float in (0, 1], default=1.0
        Layer-wise learning-rate decay: the trainable block ``k`` places below the head (the top
        block is ``k = 1``) trains at ``lr * lr_decay**k``. ``1.0`` is off.
    head_lr_scale : float, default=1.0
        The head's learning rate as a multiple of ``lr``.
    warmup_epochs : int, default=0
        Train only the head for that many epochs, then the blocks the mode trains (LP-FT).
    l2sp_alpha : float, default=0.0
        L2-SP: add ``l2sp_alpha / 2 * ||w - w_pretrained||^2`` over the trainable backbone weights
        to the training loss; those weights then get no plain weight decay (the head keeps it).
    lr_schedule : {"cosine", "onecycle"} or None, default=None
        Per-batch schedule with a linear warm-up (see the user guide).
    bn_trainable : bool, default=False
        Whether BatchNorm in trainable blocks normalises with batch statistics and updates its
        running statistics. ``False`` keeps the pretrained statistics (measured better; README).
        With ``weights=None`` BatchNorm always trains (there are no statistics to keep). Wherever
        it trains, its running statistics are re-estimated after the fit in one pass over the
        training images with the final weights (a plain average, "precise BN"), so prediction
        normalises every image alike, alone or in a batch.
    warm_start : bool, default=False
        When True and the estimator holds a network (from a fit, an interrupted fit or
        :func:`skft.load`), ``fit`` continues from its weights instead of the pretrained ones, for
        another ``max_epochs`` epochs with a fresh optimizer; ``history_`` goes on from the
        previous epochs, and L2-SP and ``drift_`` still measure from the pretrained weights. The
        network's shape (backbone, ``feature_layer``, ``head``) and the classes must stay the
        same; ``mode`` and ``trainable_layers`` may change (e.g. train the head first, then
        unfreeze).
    precision : {"fp32", "bf16", "fp16"}, default="fp32"
        Arithmetic of the network's forward: ``"bf16"`` and ``"fp16"`` run it under
        ``torch.autocast`` (mixed precision; weights, optimizer and returned outputs stay float32).
        ``"bf16"`` works on CPU and CUDA; ``"fp16"`` needs CUDA and trains with dynamic loss
        scaling (docs/scaling.md).
    lora_rank : int, default=8
        With ``mode="lora"``: the rank of each adapter's update ``B @ A``.
    lora_alpha : float or None, default=None
        With ``mode="lora"``: the update is scaled by ``lora_alpha / lora_rank``; None is
        ``2 * lora_rank`` (the value used is ``lora_alpha_``).
    lora_dropout : float in [0, 1), default=0.0
        With ``mode="lora"``: dropout on the adapters' input while training.
    tta : None, "flip" or int >= 2, default=None
        Test-time augmentation (images only): predictions (probabilities for a classifier) are
        averaged over the image and its mirror image (``"flip"``), or over the image and ``tta - 1``
        copies cropped and flipped as ``augment=True`` does, each image's draws seeded by its
        content. Only prediction changes: ``fit`` and its cached activations never see the copies.
        Costs ``2`` or ``tta`` forward passes per image (docs/modes.md has the measurements).
"""

#: The Attributes entries every fitted fine-tuning estimator has.
SHARED_ATTRIBUTES = """\
    net_ : skorch.NeuralNet
        The trained net; ``net_.module_`` is the whole network (``backbone.*``, ``head.*``), the
        estimator's own: editing it (training it further, ``.half()``) changes no other fit.
    history_ : skorch.History
        Per-epoch losses and timings; a ``warm_start`` fit appends its epochs to the previous ones.
    image_size_ : int or None
        None for a text backbone.
    max_length_ : int or None
        Text backbones: the tokens per text used; None for images.
    backbone_name_ : str
    block_names_ : list of str
        The blocks kept, up to ``feature_layer``.
    n_frozen_blocks_ : int
    lr_ : float
        The learning rate the fit used (``lr``, or what ``"auto"`` resolved to).
    max_epochs_ : int
        The passes over the data the fit was given (``max_epochs``, or what ``"auto"`` resolved to).
    n_steps_ : int
        Optimizer steps in ``history_`` (fewer than ``max_epochs_`` allows when early stopping ended
        the fit). A fit whose training loss barely moved warns (``ConvergenceWarning``) with what to
        change, unless its head started as the calibrated zero-shot classifier (``head_init``).
    trainable_layers_ : int
        How many blocks trained: all of them for ``full``, none for ``feature_extraction``.
    n_trainable_params_ : int
        How many parameters the fit trained: the head's and the trainable blocks' (``mode="lora"``:
        the adapters' and the head's, counted before the adapters were merged into the weights;
        ``mode="prompt"``: the prompt vectors', 0 when zero-shot).
    prefix_key_ : str or None
        The activation cache's key of the frozen prefix: a digest of the frozen blocks as built
        (structure and tensors) and the preprocessing; None when nothing is cached (``mode="full"``,
        augmentation, a continued fit).
    drift_ : dict of str to float
        Per block: the relative L2 distance of its parameters from their starting (pretrained)
        values after the fit (also after ``warm_start`` fits); 0.0 for blocks frozen in this fit.
        With ``mode="lora"``, the change of the merged weights.
    lora_alpha_ : float
        With ``mode="lora"``: the adapters' ``lora_alpha`` as resolved.
"""


def document_shared(cls):
    """Class decorator: put the shared Parameters and Attributes entries into ``cls.__doc__``.

    Parameters
    ----------
    cls : type
        Its docstring holds ``{parameters}`` and ``{attributes}`` placeholders.

    Returns
    -------
    type
        ``cls``, its docstring completed.
    """
    cls.__doc__ = cls.__doc__.replace("    {parameters}", SHARED_PARAMETERS.rstrip("\n")).replace(
        "    {attributes}", SHARED_ATTRIBUTES.rstrip("\n")
    )
    return cls

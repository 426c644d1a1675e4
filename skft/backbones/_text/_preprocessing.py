"""What a text backbone expects of its input: a tokenizer, a maximum length and their identity."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TextPreprocessing:
    """The tokenizer and maximum length of a text backbone (the text counterpart of ``Preprocessing``).

    Parameters
    ----------
    tokenizer : transformers.PreTrainedTokenizerBase
        The model's own tokenizer, read from its directory.
    max_length : int
        Tokens per text, special tokens included, beyond which a text is truncated: the model's
        ``sentence_bert_config.json`` ``max_seq_length`` when present, else the tokenizer's
        ``model_max_length`` capped to ``max_positions``.
    max_positions : int
        The longest sequence the model's position embeddings accept.
    pad_token_id : int
        The id that pads a batch (RoBERTa and MPNet derive position ids from it).
    tokenizer_digest : str
        Hex digest of the tokenizer's files, class and lower-casing: what identifies its output.
    """

    tokenizer: object = field(compare=False, repr=False)
    max_length: int
    max_positions: int
    pad_token_id: int
    tokenizer_digest: str

    def check_max_length(self, max_length, backbone_name):
        """Raise a ``ValueError`` when ``max_length`` is outside what the backbone accepts.

        Parameters
        ----------
        max_length : int
            The requested maximum number of tokens per text.
        backbone_name : str
            Used in the message.
        """
        if not 2 <= max_length <= self.max_positions:
            raise ValueError(
                f"max_length={max_length!r} does not fit backbone {backbone_name!r}, whose position embeddings "
                f"accept 2 to {self.max_positions} tokens. Pass max_length in that range (None uses "
                f"{self.max_length})."
            )

"""Shared text fixtures: tiny randomly initialised encoders of each family, saved as model directories,
and a small learnable text data set."""

import numpy as np
import torch
import transformers

WORDS = [
    "the",
    "a",
    "movie",
    "film",
    "good",
    "bad",
    "great",
    "awful",
    "plot",
    "actor",
    "scene",
    "funny",
    "dull",
    "long",
    "short",
    "very",
    "not",
]
#: [PAD] at id 1, as RoBERTa and MPNet pad, so that one vocabulary serves every family.
VOCAB = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
TEXTS = ["the movie", "a very very good film with a great actor", "", "dull plot", "not funny at all , awful"]
TINY = {"vocab_size": len(VOCAB), "max_position_embeddings": 40, "pad_token_id": 1}
CONFIGS = {
    "bert": lambda: transformers.BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, **TINY
    ),
    "roberta": lambda: transformers.RobertaConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, **TINY
    ),
    "distilbert": lambda: transformers.DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=37, **TINY),
    "mpnet": lambda: transformers.MPNetConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, **TINY
    ),
}


def save_tiny_model(family, folder, seed=0):
    """Save a randomly initialised tiny encoder of ``family`` with a WordPiece tokenizer in ``folder``."""
    torch.manual_seed(seed)
    model = transformers.AutoModel.from_config(CONFIGS[family]())
    model.save_pretrained(folder)
    vocab = {token: index for index, token in enumerate(VOCAB)}
    transformers.BertTokenizerFast(vocab=vocab, model_max_length=512).save_pretrained(folder)
    return folder


def make_texts(n, seed=0):
    """Short reviews whose label is whether they hold a positive word: learnable by a tiny encoder.

    Lengths vary (2 to 9 words), so batches hold padding.
    """
    rng = np.random.default_rng(seed)
    positive, negative = ["good", "great", "funny"], ["bad", "awful", "dull"]
    filler = ["the", "a", "movie", "film", "plot", "actor", "scene", "very", "long", "short"]
    texts, labels = [], []
    for index in range(n):
        label = index % 2
        words = list(rng.choice(filler, size=rng.integers(1, 8)))
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(positive if label else negative)))
        texts.append(" ".join(words))
        labels.append(label)
    return texts, np.array(labels)

"""Text input: validation of X, tokenising at each text's own length, digests, padding."""

import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from skft._text import (
    TextTruncationWarning,
    check_texts,
    pad_activations,
    pad_token_ids,
    text_digests,
    tokenize_texts,
    unpad_activations,
)

TEXTS = ["a good film", "", "bad"]


@pytest.mark.parametrize(
    "X",
    [
        TEXTS,
        tuple(TEXTS),
        np.array(TEXTS),
        np.array(TEXTS, dtype=object),
        pd.Series(TEXTS, index=[5, 3, 9]),
        pd.Series(TEXTS, dtype="string"),
    ],
    ids=["list", "tuple", "str-array", "object-array", "series", "string-series"],
)
def test_sequences_of_str_become_a_list_of_str(X):
    texts = check_texts(X)
    assert texts == TEXTS and all(type(text) is str for text in texts)


@pytest.mark.parametrize(
    ("X", "error", "message"),
    [
        ("one text", TypeError, r"X is a single str .* X=\[text\]"),
        ([b"bytes"], TypeError, r"X\[0\] is bytes .* Decode"),
        (["ok", None], ValueError, r"X\[1\] is missing \(None\).* ''"),
        (["ok", float("nan")], ValueError, r"X\[1\] is missing \(nan\)"),
        (pd.Series(["ok", None], dtype="string"), ValueError, r"X\[1\] is missing"),
        (["ok", 3], TypeError, r"X\[1\] is of type int .* sequence of str"),
        ([pathlib.Path("a.png")], TypeError, r"X\[0\] is of type \w*Path.* image backbone"),
        (np.array([["a", "b"], ["c", "d"]]), ValueError, r"2-D array of str with shape \(2, 2\).* X\[:, 0\]"),
        ([["a", "b"], ["c", "d"]], ValueError, r"2-D array of str"),
        (pd.DataFrame({"review": ["a"]}), ValueError, r"DataFrame .* X\['review'\]"),
        (np.zeros((2, 8, 8, 3), dtype=np.uint8), ValueError, r"looks like images .* image backbone"),
        (np.zeros((2, 8), dtype=np.float32), ValueError, r"looks like images or numbers"),
        (np.zeros(4), ValueError, r"looks like images or numbers"),
        ([np.zeros((8, 8, 3), dtype=np.uint8), np.zeros((4, 4, 3), dtype=np.uint8)], TypeError, "image backbone"),
        ([], ValueError, "X holds no texts"),
    ],
    ids=[
        "str",
        "bytes",
        "none",
        "nan",
        "pd-na",
        "int",
        "path",
        "2d-array",
        "2d-list",
        "dataframe",
        "images",
        "table",
        "1-d-numbers",
        "image-list",
        "empty",
    ],
)
def test_bad_texts_get_a_clear_error(X, error, message):
    with pytest.raises(error, match=message):
        check_texts(X)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"texts\[0\] is missing"):
        check_texts([None], name="texts")


class CharacterTokenizer:
    """A stand-in for a Hugging Face tokenizer: one token per character, between [CLS]=2 and [SEP]=3."""

    def __call__(self, texts, add_special_tokens=True, truncation=False, max_length=None):
        ids = [[2] + [10 + ord(character) % 50 for character in text] + [3] for text in texts]
        if truncation:
            ids = [sequence[: max_length - 1] + [3] if len(sequence) > max_length else sequence for sequence in ids]
        return {"input_ids": ids}


def test_each_text_is_tokenised_at_its_own_length_and_truncated_with_one_warning():
    texts = ["abc", "", "x" * 20, "y" * 30, "z" * 7]
    with pytest.warns(TextTruncationWarning) as caught:
        ids = tokenize_texts(texts, CharacterTokenizer(), max_length=10)
    assert len(caught) == 1 and "2 of 5 texts are longer than max_length=10" in str(caught[0].message)
    assert [len(sequence) for sequence in ids] == [5, 2, 10, 10, 9]
    assert ids[2][0] == 2 and ids[2][-1] == 3 and ids[0].dtype == np.int64
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tokenize_texts(texts[:2], CharacterTokenizer(), max_length=10)


def test_truncation_counts_the_real_tokenizer_special_tokens():
    transformers = pytest.importorskip("transformers")
    from skft.backbones._text import text_backbone_spec

    preprocessing = text_backbone_spec("all-MiniLM-L6-v2").preprocessing("DEFAULT")
    assert isinstance(preprocessing.tokenizer, transformers.PreTrainedTokenizerBase)
    with pytest.warns(TextTruncationWarning, match="1 of 2"):
        ids = tokenize_texts(["word " * 300, "word " * 254], preprocessing.tokenizer, preprocessing.max_length)
    assert [len(sequence) for sequence in ids] == [256, 256]
    assert ids[0][-1] == preprocessing.tokenizer.sep_token_id


def test_digests_depend_on_content_tokenizer_and_max_length():
    base = text_digests(["a film", "a film", "a  film", ""], "tok1", 256)
    assert base[0] == base[1] and len(set(base[1:])) == 3
    assert all(len(digest) == 32 and int(digest, 16) >= 0 for digest in base)
    assert text_digests(["a film"], "tok2", 256)[0] != base[0]
    assert text_digests(["a film"], "tok1", 128)[0] != base[0]
    assert text_digests(["a film"], "tok1", 256) == base[:1]


def test_tokenizer_digest_follows_the_files_bytes(tmp_path):
    transformers = pytest.importorskip("transformers")
    from skft.backbones._text import tokenizer_digest

    vocab = {"[UNK]": 0, "[PAD]": 1, "[CLS]": 2, "[SEP]": 3, "film": 4}
    transformers.BertTokenizerFast(vocab=vocab).save_pretrained(tmp_path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path)
    first = tokenizer_digest(tmp_path, tokenizer, lower_case=False)
    assert first == tokenizer_digest(tmp_path, tokenizer, lower_case=False)
    assert first != tokenizer_digest(tmp_path, tokenizer, lower_case=True)
    (tmp_path / "tokenizer.json").write_text((tmp_path / "tokenizer.json").read_text().replace("film", "movie"))
    assert tokenizer_digest(tmp_path, tokenizer, lower_case=False) != first


def test_token_ids_are_padded_per_batch_with_the_pad_id():
    input_ids, attention_mask = pad_token_ids([np.array([2, 7, 3]), np.array([2, 3]), [2, 5, 6, 8, 3]], 1)
    assert input_ids.tolist() == [[2, 7, 3, 1, 1], [2, 3, 1, 1, 1], [2, 5, 6, 8, 3]]
    assert attention_mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert input_ids.dtype == attention_mask.dtype == torch.int64


def test_activations_are_padded_and_unpadded_per_text():
    torch.manual_seed(0)
    activations = [torch.randn(3, 4), torch.randn(1, 4), torch.randn(5, 4)]
    hidden, attention_mask = pad_activations(activations)
    assert hidden.shape == (3, 5, 4) and attention_mask.sum(1).tolist() == [3, 1, 5]
    assert torch.equal(hidden[0, 3:], torch.zeros(2, 4))
    for ours, theirs in zip(unpad_activations(hidden, attention_mask), activations):
        assert torch.equal(ours, theirs)

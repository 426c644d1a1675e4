"""Text backbones: tiny randomly initialised BERT, RoBERTa, DistilBERT and MPNet read from directories,
and the shipped all-MiniLM-L6-v2 against sentence-transformers."""

import json
import logging

import numpy as np
import pytest
import torch

from skft._text import TextTruncationWarning, pad_token_ids, tokenize_texts
from skft.backbones._text import (
    MINILM,
    TextPool,
    is_text_backbone,
    text_backbone_spec,
)

from text_fixtures import CONFIGS, TEXTS, VOCAB, save_tiny_model

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def tiny_dir(request, tmp_path_factory):
    return save_tiny_model(request.param, tmp_path_factory.mktemp(request.param))


def run_blocks(blocks, input_ids, attention_mask):
    state = (input_ids, attention_mask)
    for _, block in blocks:
        state = block(state)
    return state


def masked_mean(hidden, attention_mask):
    weights = attention_mask.unsqueeze(-1).float()
    return (hidden * weights).sum(1) / weights.sum(1)


def test_blocks_then_pooling_equal_the_models_own_forward(tiny_dir):
    spec = text_backbone_spec(tiny_dir)
    preprocessing = spec.preprocessing("DEFAULT")
    parts = spec.split(spec.build("DEFAULT"))
    assert parts.pooling == "masked_mean"
    assert [name for name, _ in parts.blocks] == ["embeddings", "layer_0", "layer_1"]
    input_ids, attention_mask = pad_token_ids(
        tokenize_texts(TEXTS, preprocessing.tokenizer, preprocessing.max_length), preprocessing.pad_token_id
    )
    assert attention_mask.sum(1).min() < attention_mask.shape[1]  # the batch holds padding
    assert preprocessing.pad_token_id == 1 and (input_ids[1] == VOCAB.index("good")).any()
    reference = transformers.AutoModel.from_pretrained(tiny_dir).eval()
    with torch.no_grad():
        ours = TextPool(parts.pooling)(run_blocks(parts.blocks, input_ids, attention_mask))
        theirs = masked_mean(
            reference(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state, attention_mask
        )
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_the_skeleton_given_the_pretrained_state_equals_the_pretrained_model(tiny_dir):
    spec = text_backbone_spec(tiny_dir)
    pretrained = spec.build("DEFAULT")
    skeleton = spec.build(None)
    assert not all(torch.equal(a, b) for a, b in zip(skeleton.state_dict().values(), pretrained.state_dict().values()))
    skeleton.load_state_dict(pretrained.state_dict())
    input_ids, attention_mask = pad_token_ids([[2, 5, 6, 3], [2, 7, 3]], 1)
    with torch.no_grad():
        for (name, ours), (_, theirs) in zip(spec.split(skeleton).blocks, spec.split(pretrained).blocks):
            state_ours, state_theirs = ours((input_ids, attention_mask)), theirs((input_ids, attention_mask))
            torch.testing.assert_close(state_ours.hidden, state_theirs.hidden, atol=0, rtol=0, msg=name)
            input_ids = state_ours.hidden


def test_models_are_built_in_eval_mode_without_the_pooler(tiny_dir):
    spec = text_backbone_spec(tiny_dir)
    for weights in ("DEFAULT", None):
        model = spec.build(weights)
        assert not model.training
        assert getattr(model, "pooler", None) is None
        assert not any("pooler" in name for name in model.state_dict())


def test_block_names_are_module_child_names(tiny_dir):
    spec = text_backbone_spec(tiny_dir)
    for name, _ in spec.split(spec.build(None)).blocks:
        assert name.isidentifier() and "." not in name


def test_a_frozen_layer_leaves_no_gradient_to_other_layers_mpnet_bias(tmp_path):
    spec = text_backbone_spec(save_tiny_model("mpnet", tmp_path))
    blocks = spec.split(spec.build("DEFAULT")).blocks
    tables = [block.relative_position.relative_attention_bias.weight for _, block in blocks[1:]]
    assert tables[0] is not tables[1] and torch.equal(tables[0], tables[1])
    blocks[1][1].requires_grad_(False)
    input_ids, attention_mask = pad_token_ids([[2, 5, 6, 3]], 1)
    TextPool("masked_mean")(run_blocks(blocks, input_ids, attention_mask)).sum().backward()
    assert tables[0].grad is None and tables[1].grad is not None


def test_weights_other_than_default_or_none_are_refused(tiny_dir):
    with pytest.raises(ValueError, match="weights='IMAGENET1K_V1'"):
        text_backbone_spec(tiny_dir).build("IMAGENET1K_V1")


def test_max_length_falls_back_to_the_tokenizer_capped_to_the_positions(tiny_dir):
    preprocessing = text_backbone_spec(tiny_dir).preprocessing("DEFAULT")
    offset = 2 if tiny_dir.name.startswith(("roberta", "mpnet")) else 0
    assert preprocessing.max_positions == 40 - offset
    assert preprocessing.max_length == 40 - offset
    with pytest.raises(ValueError, match="max_length=100"):
        preprocessing.check_max_length(100, "tiny")


def test_unsupported_families_and_poolings_are_refused(tmp_path):
    folder = save_tiny_model("bert", tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(config, model_type="gpt2")))
    with pytest.raises(ValueError, match="'gpt2' model"):
        text_backbone_spec(folder)
    (folder / "config.json").write_text(json.dumps(config))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match="Dense"):
        text_backbone_spec(folder)
    (folder / "modules.json").write_text(json.dumps(modules[:2]))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    assert text_backbone_spec(folder).pooling == "cls"
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True}))
    with pytest.raises(ValueError, match="pooling_mode_max_tokens"):
        text_backbone_spec(folder)


def test_weights_are_read_from_safetensors_only(tmp_path):
    folder = save_tiny_model("bert", tmp_path)
    (folder / "model.safetensors").unlink()
    torch.save(transformers.AutoModel.from_config(CONFIGS["bert"]()).state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="safetensors only"):
        text_backbone_spec(folder).build("DEFAULT")


def test_loading_is_silent(tiny_dir, capfd, caplog):
    spec = text_backbone_spec(tiny_dir)
    with caplog.at_level(logging.INFO):
        spec.build("DEFAULT")
        spec.preprocessing("DEFAULT")
    assert capfd.readouterr() == ("", "")
    assert not [record for record in caplog.records if record.name.startswith("transformers")]


def test_a_missing_hugging_face_model_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="hf download someone/not-here"):
        text_backbone_spec("hf:someone/not-here")


def test_a_model_in_the_hugging_face_cache_is_found(tmp_path, monkeypatch):
    snapshot = tmp_path / "models--someone--tiny" / "snapshots" / ("0" * 40)
    save_tiny_model("bert", snapshot.parent.parent.parent / "tmp-model")
    snapshot.parent.mkdir(parents=True)
    (tmp_path / "tmp-model").rename(snapshot)
    (tmp_path / "models--someone--tiny" / "refs").mkdir()
    (tmp_path / "models--someone--tiny" / "refs" / "main").write_text("0" * 40)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    spec = text_backbone_spec("hf:someone/tiny")
    assert spec.source == "huggingface" and spec.model_dir == str(snapshot)


def test_text_backbone_names_are_recognised(tiny_dir, tmp_path):
    assert is_text_backbone(MINILM) and is_text_backbone("hf:a/b") and is_text_backbone(tiny_dir)
    assert not is_text_backbone("efficientnet_lite0") and not is_text_backbone(tmp_path)
    with pytest.raises(ValueError, match="not a text backbone"):
        text_backbone_spec(tmp_path)


def test_missing_transformers_names_the_text_extra(monkeypatch, tiny_dir):
    import builtins

    real_import = builtins.__import__

    def refuse_transformers(name, *args, **kwargs):
        if name == "transformers" or name.startswith("transformers."):
            raise ImportError("No module named 'transformers'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse_transformers)
    with pytest.raises(ImportError, match=r"pip install 'skft\[text\]'"):
        text_backbone_spec(tiny_dir)


@pytest.mark.slow
def test_minilm_equals_sentence_transformers_encode():
    sentence_transformers = pytest.importorskip("sentence_transformers")
    spec = text_backbone_spec(MINILM)
    preprocessing = spec.preprocessing("DEFAULT")
    assert preprocessing.max_length == 256 and spec.pooling == "masked_mean_normalized"
    texts = ["A gripping, beautifully shot film.", "Dull.", "", "It is " + "very " * 300 + "long."]
    with pytest.warns(TextTruncationWarning, match="1 of 4 texts"):
        ids = tokenize_texts(texts, preprocessing.tokenizer, preprocessing.max_length)
    input_ids, attention_mask = pad_token_ids(ids, preprocessing.pad_token_id)
    blocks = spec.split(spec.build("DEFAULT")).blocks
    with torch.no_grad():
        ours = TextPool(spec.pooling)(run_blocks(blocks, input_ids, attention_mask)).numpy()
    theirs = sentence_transformers.SentenceTransformer(spec.model_dir, device="cpu").encode(texts)
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)
    assert [name for name, _ in blocks] == ["embeddings"] + [f"layer_{index}" for index in range(6)]

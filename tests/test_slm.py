"""Speech-LM data and model contracts, no training: document-blocked attention, labels, streaming, text mixing.

Model: a randomly initialised tiny ``LlamaForCausalLM`` (cold init, no weights fetched). Data: packed shards
written by ``slm/synthetic.py`` in the packing hook's format (small row groups, so streaming crosses many).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from slmfactory.slm.data import IGNORE, PackedBlocks, make_labels
from slmfactory.slm.init import cold_model
from slmfactory.slm.synthetic import vocab_info, write_packed
from slmfactory.slm.textdata import TextBlocks, text_blocks_before

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2,
        "intermediate_size": 64}


def test_packed_attention_does_not_cross_documents():
    """HF builds a block-diagonal mask from position_ids resets: the second document never sees the first."""
    model = cold_model(vocab_info(16, 32), TINY, seed=0).eval()
    pos = torch.tensor([[0, 1, 2, 3, 0, 1, 2]])
    a = torch.tensor([[13, 20, 21, 10, 22, 23, 24]])
    b = torch.tensor([[13, 25, 26, 10, 22, 23, 24]])  # different first document, same second one
    with torch.no_grad():
        la = model(input_ids=a, position_ids=pos, use_cache=False).logits
        lb = model(input_ids=b, position_ids=pos, use_cache=False).logits
    assert torch.allclose(la[0, 4:], lb[0, 4:], atol=1e-5), "second document attended to the first"
    assert not torch.allclose(la[0, 1:3], lb[0, 1:3])


def test_labels_skip_padding_and_next_document_start():
    ids = np.array([[5, 6, 7, 2, 8, 9, 2, 0, 0]])
    pos = np.array([[0, 1, 2, 3, 0, 1, 2, 0, 0]])
    mask = np.array([[1, 1, 1, 1, 1, 1, 1, 0, 0]])
    labels = make_labels(ids, mask, pos)
    # EOS (index 3) must not predict the next document's first token (8); padding is never a target
    assert labels.tolist() == [[6, 7, 2, IGNORE, 9, 2, IGNORE, IGNORE, IGNORE]]


def test_stream_is_seeded_resumable_and_keeps_validation_out(tmp_path):
    d = write_packed(tmp_path / "p", 40 * 16, context_length=16, blocks_per_shard=6)
    data = PackedBlocks(d, val_fraction=0.1, seed=3)
    assert data.num_blocks >= 40 and len(data.groups) >= 7 and data.is_val.sum() == round(0.1 * data.num_blocks)
    n = data.num_train
    first = [b[0].tobytes() for _, b in zip(range(2 * n + 5), data.stream(0))]
    resumed = [b[0].tobytes() for _, b in zip(range(n + 5), data.stream(n))]
    assert resumed == first[n:], "stream(k) must continue exactly where stream(0) is after k blocks"
    val = {b[0].tobytes() for b in data.validation()}
    assert len(set(first[:n])) == n, "an epoch visits every training block once"
    assert not val & set(first[:n]), "held-out blocks leaked into training"
    assert first[:n] != first[n:2 * n], "epochs are reshuffled"
    again = PackedBlocks(d, val_fraction=0.1, seed=3)
    assert [b[0].tobytes() for _, b in zip(range(n), again.stream(0))] == first[:n]


def test_text_corpus_blocks_and_share(tmp_path):
    """A text file is tokenized with the packed set's own tokenizer and framed [TEXT] ids [EOS]."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["[UNK]", "the", "cat", "sat", "on", "a", "mat", "dog"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    info = vocab_info(16, 8, text_vocab=len(words), text_tokenizer=str(tmp_path / "tokenizer.json"))
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in ("The cat sat.", "A dog on a mat")))
    blocks = TextBlocks(tmp_path / "t.jsonl", info)
    got = [b for _, b in zip(range(3), blocks.stream(0))]
    t, e = info["special_tokens"]["[TEXT]"], info["special_tokens"]["[EOS]"]
    assert got[0][0].tolist() == [t, 1, 2, 3, e, t, 5, 7]
    assert got[0][2].tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    assert [b[0].tolist() for _, b in zip(range(2), blocks.stream(1))] == [g[0].tolist() for g in got[1:3]]
    # per-token share: after any number of steps the text blocks are floor(share * blocks)
    for share, gb in ((0.2, 8), (0.37, 3)):
        total = sum(text_blocks_before(s + 1, share, gb) - text_blocks_before(s, share, gb) for s in range(50))
        assert abs(total / (50 * gb) - share) < 1 / (50 * gb) + 1e-9
    with pytest.raises(ValueError, match="text_corpus"):
        from slmfactory.slm.train import TrainConfig

        TrainConfig(data=".", out=".", text_share=0.2)

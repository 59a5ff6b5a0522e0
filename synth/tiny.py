"""A tiny, randomly initialised causal LM + tokenizer written to a local folder.

Why it ships in the package: tests and ``bench/bench_synth.py`` exercise the real ``transformers`` code path
(tokenizer, chat rendering, batched generation) with no download. The weights are random, so the text
is gibberish; what it proves is plumbing, batching, determinism and error routing, never quality.
"""
from __future__ import annotations

from pathlib import Path

CORPUS = [
    "could you tell me what the weather is like today",
    "the answer is a short spoken sentence",
    '{"instruction": "say this", "answer": "hello there"}',
    '{"pairs": [{"question": "what did the speaker say", "answer": "the birch canoe"}]}',
    "user assistant system please give me three tips",
]


def make_tiny_llm(path: str | Path, hidden: int = 64, layers: int = 2, vocab: int = 512, seed: int = 0) -> Path:
    """Write a random LlamaForCausalLM (``hidden`` wide, ``layers`` deep) and a BPE tokenizer trained on ``CORPUS``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")
    fast.save_pretrained(path)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=hidden, intermediate_size=hidden * 2,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=1024, bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                      pad_token_id=fast.pad_token_id)
    LlamaForCausalLM(cfg).save_pretrained(path, safe_serialization=True)
    return path

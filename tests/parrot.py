"""A tiny Qwen2 that says one fixed answer, built offline: the LLM tests' stand-in for a real instruct model."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def build_parrot(folder: Path, answer: str, conversation: list[dict[str, Any]]) -> Path:
    """A tiny Qwen2 in `folder` whose weights make greedy decoding say `answer` and stop, whatever it is asked.

    Attention and MLP outputs are zeroed, so each position's hidden state is its token's embedding, and the
    (untied) output layer maps each token of `answer` to the next: the model is a chain, run by generate().
    `conversation` is what the code under test sends, so the chain starts at its chat template's last token."""
    import torch
    import transformers

    from storyforge.enhance import qwen

    folder = qwen.build_tiny(folder, vocab_size=1024, text=[answer] * 8)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    chat = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    start = tokenizer(chat, add_special_tokens=False)["input_ids"][-1]
    chain = [start, *tokenizer(answer, add_special_tokens=False)["input_ids"],
             tokenizer.convert_tokens_to_ids("<|im_end|>")]
    assert len(set(chain)) == len(chain), "each token of the answer must be distinct"
    config = transformers.AutoConfig.from_pretrained(folder)
    config.tie_word_embeddings = False
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(config)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embedding = model.model.embed_tokens.weight
        normed = embedding / embedding.pow(2).mean(-1, keepdim=True).sqrt()  # what the final RMSNorm gives
        head = torch.zeros_like(model.lm_head.weight)
        for token, following in zip(chain, chain[1:], strict=False):
            head[following] += normed[token]
        model.lm_head.weight.copy_(head)
    model.save_pretrained(folder)
    return folder

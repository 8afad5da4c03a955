"""Tokenizers built locally for the embedded world (no Hub download).

Defined for the foundation's model zoo; every chapter on the `tiny` profile uses them
through `survey_lib.models.load_model`.

A word-level tokenizer serves the text world (one token per word) and a character-level
one the arithmetic task (one token per digit or sign). Both are `PreTrainedTokenizerFast`
objects saved with `save_pretrained`, so `AutoTokenizer.from_pretrained(path)` loads them
and TRL's trainers accept them. They share one chat template:

    <|user|> the movie <|assistant|> was great . </s>
"""
from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from ._checks import check_choice

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|> ' + message['content'] + ' ' }}"
    "{% if message['role'] == 'assistant' %}{{ '</s> ' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|> ' }}{% endif %}"
)
LEVELS = ("word", "char")


def build_tokenizer(words: list[str], level: str) -> PreTrainedTokenizerFast:
    """A tokenizer whose vocabulary is the special tokens followed by `words`.

    Args:
        words: the world's vocabulary (words for "word", single characters for "char").
        level: "word" splits on whitespace and decodes with spaces; "char" splits every
            character and decodes by concatenation.
    """
    check_choice("level", level, LEVELS)
    specials = [PAD, EOS, UNK, *ROLE_TOKENS]
    vocab = {tok: i for i, tok in enumerate(specials + [w for w in words if w not in specials])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    if level == "word":
        backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    else:
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex("."), behavior="isolated")]
        )
        backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        eos_token=EOS,
        unk_token=UNK,
        additional_special_tokens=list(ROLE_TOKENS),
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
    )
    return tokenizer

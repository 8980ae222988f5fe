"""Instruction data: templates, masking, length policy, raw-text blocks, and the errors bad data gets."""

from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from language_generation.config import get_cfg
from language_generation.data import (
    ALPACA_PROMPTS,
    IGNORE_INDEX,
    alpaca_prompt,
    build_datasets,
    describe_example,
    sharegpt_example,
)


@pytest.fixture(scope="module")
def tokenizer():
    """A word-level tokenizer over a small vocabulary, built offline."""
    words = (
        "below is an instruction that describes a task paired with input provides further context write "
        "response appropriately completes the request ### instruction: input: response: add 2 and 3 5 "
        "hello world say hi user: assistant: chat between curious user artificial intelligence assistant "
        "gives helpful detailed polite answers to user's questions . , ? ! 1 4 6 7 8 9 0"
    ).split()
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate(dict.fromkeys(words))}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    # words, and a word ends after ':' (the Alpaca template runs "### Response:" into the response)
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(":", behavior="merged_with_previous")]
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tok.pad_token = tok.eos_token
    return tok


def write(tmp_path, records, name="data.json"):
    path = tmp_path / name
    if name.endswith(".jsonl"):
        path.write_text("\n".join(json.dumps(r) for r in records))
    else:
        path.write_text(json.dumps(records))
    return path


def cfg_for(path, **data):
    cfg = get_cfg()
    cfg.DATA.PATH = str(path)
    cfg.DATA.EVAL_FRACTION = 0.0
    for key, value in data.items():
        setattr(cfg.DATA, key, value)
    return cfg


def test_alpaca_templates():
    assert alpaca_prompt({"instruction": "say hi", "input": ""}) == ALPACA_PROMPTS["prompt_no_input"].format(
        instruction="say hi"
    )
    assert "### Input:\nworld" in alpaca_prompt({"instruction": "say hi", "input": "world"})


def test_only_the_response_and_eos_take_loss(tmp_path, tokenizer):
    path = write(tmp_path, [{"instruction": "add 2 and 3", "input": "", "output": "5"}])
    train, held_out = build_datasets(cfg_for(path), tokenizer)
    example = train[0]
    supervised = [t for t, label in zip(example["input_ids"], example["labels"]) if label != IGNORE_INDEX]
    assert tokenizer.decode(supervised) == "5 </s>" and held_out is None
    assert example["input_ids"][0] != tokenizer.bos_token_id  # this tokenizer puts nothing in front
    assert describe_example(example, tokenizer).endswith("]5</s>")


TWO_TURNS = {
    "conversations": [
        {"from": "human", "value": "say hi"},
        {"from": "gpt", "value": "hi !"},
        {"from": "human", "value": "add 2 and 3"},
        {"from": "gpt", "value": "5"},
    ]
}


def test_sharegpt_supervises_assistant_turns_only(tokenizer):
    record = TWO_TURNS
    example = sharegpt_example(record, tokenizer)
    supervised = [t for t, label in zip(example["input_ids"], example["labels"]) if label != IGNORE_INDEX]
    assert tokenizer.decode(supervised) == "hi ! </s> 5 </s>"


@pytest.mark.parametrize(("policy", "count"), [("truncate", 2), ("drop", 1)])
def test_length_policy(tmp_path, tokenizer, policy, count, caplog):
    records = [{"instruction": "say hi", "output": "hi"}, {"instruction": "say hi", "output": "hello " * 60}]
    with caplog.at_level("INFO"):
        train, _ = build_datasets(cfg_for(write(tmp_path, records), MAX_LENGTH=40, TOO_LONG=policy), tokenizer)
    assert len(train) == count and all(len(e) <= 40 for e in train["input_ids"])
    assert "1 of 2 examples are longer than DATA.MAX_LENGTH=40" in caplog.text
    with pytest.raises(ValueError, match="DATA.TOO_LONG raise"):
        build_datasets(cfg_for(write(tmp_path, records), MAX_LENGTH=40, TOO_LONG="raise"), tokenizer)


def test_text_blocks_and_held_out_split(tmp_path, tokenizer):
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(["hello world . say hi !"] * 30))
    train, held_out = build_datasets(cfg_for(path, FORMAT="text", BLOCK_SIZE=16, EVAL_FRACTION=0.25), tokenizer)
    assert all(len(ids) == 16 for ids in train["input_ids"]) and train[0]["labels"] == train[0]["input_ids"]
    assert len(held_out) == round((len(train) + len(held_out)) * 0.25)


@pytest.mark.parametrize(
    ("content", "name", "pattern"),
    [
        ('[{"instruction": "a", "output": "b"}, {"instruction": ', "bad.json", r"bad.json: not valid JSON at line 1"),
        ('{"instruction": "a", "output": "b"}\n{oops}', "bad.jsonl", r"bad.jsonl:2: not valid JSON"),
        ('[{"instruction": "a", "output": "b"}, 7]', "rec.json", r"rec.json: record 1 is a int"),
        ('[{"instruction": "a", "output": "b"}, {"instruction": "c"}]', "miss.json", r"record 1 lacks \['output'\]"),
        ('{"instruction": "a"}', "obj.json", r"expected a JSON list of records, got dict"),
    ],
)
def test_bad_data_is_named(tmp_path, tokenizer, content, name, pattern):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=pattern):
        build_datasets(cfg_for(path), tokenizer)


def test_nothing_left_after_filtering_is_an_error(tmp_path, tokenizer):
    path = write(tmp_path, [{"instruction": "say hi", "output": "hello " * 60}])
    with pytest.raises(ValueError, match="no training examples left"):
        build_datasets(cfg_for(path, MAX_LENGTH=10, TOO_LONG="drop"), tokenizer)


def supervised_text(example, tokenizer):
    return tokenizer.decode([t for t, label in zip(example["input_ids"], example["labels"]) if label != IGNORE_INDEX])


def test_truncation_that_cuts_every_response_token_drops_the_example(tmp_path, tokenizer, caplog):
    long_prompt = {"instruction": "say hi " * 40, "output": "hi"}
    records = [{"instruction": "say hi", "output": "hi"}, long_prompt]
    with caplog.at_level("INFO"):
        train, _ = build_datasets(cfg_for(write(tmp_path, records), MAX_LENGTH=40), tokenizer)
    assert len(train) == 1 and supervised_text(train[0], tokenizer) == "hi </s>"
    assert "dropped 1 of 2 examples: every response token cut off by truncation" in caplog.text
    with pytest.raises(ValueError, match="DATA.MAX_LENGTH=40"):  # nothing to learn left: stop, naming the key
        build_datasets(cfg_for(write(tmp_path, [long_prompt] * 3, "long.json"), MAX_LENGTH=40), tokenizer)


def test_alpaca_input_reaches_the_prompt_and_jsonl_streams(tmp_path, tokenizer):
    records = [
        {"instruction": "add 2 and 3", "input": "hello world", "output": "5"},
        {"instruction": "a", "output": "b"},
    ]
    train, _ = build_datasets(cfg_for(write(tmp_path, records, "d.jsonl")), tokenizer)
    assert len(train) == 2 and "### <unk> hello world ###" in tokenizer.decode(train[0]["input_ids"])


def test_vicuna_template_on_alpaca_records(tmp_path, tokenizer):
    path = write(tmp_path, [{"instruction": "say hi", "input": "", "output": "hi !"}])
    train, _ = build_datasets(cfg_for(path, TEMPLATE="vicuna"), tokenizer)
    assert supervised_text(train[0], tokenizer) == "hi ! </s>"
    assert tokenizer.decode(train[0]["input_ids"]).startswith("<unk> chat between")


CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + ' </s> ' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
)


def test_chat_template_masks_all_but_the_assistant_turns(tmp_path, tokenizer):
    chat_tok = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer, **tokenizer.special_tokens_map)
    chat_tok.chat_template = CHAT_TEMPLATE
    record = TWO_TURNS
    train, _ = build_datasets(cfg_for(write(tmp_path, [record]), FORMAT="sharegpt", TEMPLATE="chat"), chat_tok)
    assert (
        chat_tok.decode(train[0]["input_ids"])
        == "user: say hi </s> assistant: hi ! </s> user: add 2 and 3 </s> assistant: 5 </s>"
    )
    assert supervised_text(train[0], chat_tok) == "hi ! </s> 5 </s>"  # the replies and their end-of-turn only
    with pytest.raises(ValueError, match="has no chat template"):
        build_datasets(cfg_for(write(tmp_path, [record]), FORMAT="sharegpt", TEMPLATE="chat"), tokenizer)


@pytest.mark.parametrize(
    ("conversations", "pattern"),
    [
        ([{"from": "human"}], r"record 0: turn 0 \('from': 'human'\) needs a string 'value'"),
        ([{"from": "human", "value": None}], r"turn 0 .* needs a string 'value'"),
        (None, r"'conversations' is NoneType, expected a list of turns"),
        ("hello", r"'conversations' is str, expected a list"),
    ],
)
def test_bad_sharegpt_turns_are_named(tmp_path, tokenizer, conversations, pattern):
    path = write(tmp_path, [{"conversations": conversations}])
    with pytest.raises(ValueError, match=pattern):
        build_datasets(cfg_for(path, FORMAT="sharegpt"), tokenizer)


def test_non_utf8_file_and_full_eval_fraction_are_named(tmp_path, tokenizer):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"instruction": "a", "output": "b"}\n{"instruction": "caf\xe9", "output": "b"}\n')
    with pytest.raises(ValueError, match=r"latin.jsonl:2: not UTF-8 text"):
        build_datasets(cfg_for(path), tokenizer)
    good = write(tmp_path, [{"instruction": "say hi", "output": "hi"}] * 4)
    with pytest.raises(ValueError, match=r"DATA.EVAL_FRACTION=1.0 must be in \[0, 1\)"):
        build_datasets(cfg_for(good, EVAL_FRACTION=1.0), tokenizer)
    with pytest.raises(ValueError, match=r"DATA.EVAL_FRACTION=0.9 holds out all 4 examples"):
        build_datasets(cfg_for(good, EVAL_FRACTION=0.9), tokenizer)


def test_text_blocks_put_the_leading_special_token_before_every_document(tmp_path, tokenizer):
    from tokenizers import processors

    bos_tok = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer, **tokenizer.special_tokens_map)
    bos_tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", 1)]
    )
    path = tmp_path / "corpus.txt"
    path.write_text("hello world\n\nsay hi\n\nadd 2 and 3")
    train, _ = build_datasets(cfg_for(path, FORMAT="text", BLOCK_SIZE=4), bos_tok)
    assert [bos_tok.decode(ids) for ids in train["input_ids"]] == ["<s> hello world <s>", "say hi <s> add"]
    plain, _ = build_datasets(cfg_for(path, FORMAT="text", BLOCK_SIZE=4), tokenizer)  # no BOS: EOS separates
    assert tokenizer.decode(plain[0]["input_ids"]) == "hello world </s> say"


def test_max_records_reads_only_the_first(tmp_path, tokenizer):
    records = [{"instruction": "say hi", "output": str(i % 10)} for i in range(20)]
    train, _ = build_datasets(cfg_for(write(tmp_path, records, "d.jsonl"), MAX_RECORDS=5), tokenizer)
    assert len(train) == 5


def test_tokenising_in_two_processes_gives_the_same_examples(tmp_path, tokenizer):
    records = [{"instruction": "say hi", "input": str(i % 10), "output": "hello world"} for i in range(40)]
    path = write(tmp_path, records, "d.jsonl")
    one, _ = build_datasets(cfg_for(path), tokenizer)
    two, _ = build_datasets(cfg_for(path, NUM_PROC=2, CACHE_DIR=str(tmp_path / "cache")), tokenizer)
    assert one["input_ids"] == two["input_ids"] and one["labels"] == two["labels"]


def test_a_limited_hub_dataset_is_streamed_and_checked(tokenizer, monkeypatch):
    import datasets

    served = []

    def documents():
        for i in range(1000):
            served.append(i)
            yield {"text": f"hello world {i % 10}", "url": "x"} if i != 7 else {"url": "no text"}

    def fake_load_dataset(name, split, streaming=False, cache_dir=None):
        assert name == "someone/corpus" and split == "train" and streaming  # never the whole split
        return datasets.IterableDataset.from_generator(documents)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    cfg = cfg_for("someone/corpus", FORMAT="text", BLOCK_SIZE=4, MAX_RECORDS=5)
    train, _ = build_datasets(cfg, tokenizer)
    assert len(train) == 5 and tokenizer.decode(train[0]["input_ids"]) == "hello world 0 </s>"
    assert len(served) < 100  # only what was read was fetched
    with pytest.raises(ValueError, match=r"hub dataset someone/corpus: record 7 lacks \['text'\]"):
        build_datasets(cfg_for("someone/corpus", FORMAT="text", BLOCK_SIZE=4, MAX_RECORDS=9), tokenizer)


def test_a_conversation_without_a_reply_is_dropped_and_counted(tmp_path, tokenizer, caplog):
    records = [TWO_TURNS, {"conversations": [{"from": "human", "value": "say hi"}]}]
    with caplog.at_level("INFO"):
        train, _ = build_datasets(cfg_for(write(tmp_path, records), FORMAT="sharegpt"), tokenizer)
    assert len(train) == 1 and "dropped 1 of 2 examples: nothing to learn" in caplog.text


def test_prompt_and_response_are_tokenised_as_one_text_as_the_original(tmp_path):
    """With a SentencePiece-style (Metaspace) tokenizer, "### Response:" + "The cat" tokenised apart starts the
    response with the word-initial "▁The"; tokenised as one text (the original's ``tokenize(source + target)``),
    it is what the model sees when it generates after the prompt."""
    from tokenizers import decoders, trainers

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always")
    backend.decoder = decoders.Metaspace(prepend_scheme="always")
    corpus = [alpaca_prompt({"instruction": "name the animal", "input": ""}) + " The cat sat. The dog ran."] * 5
    trainer = trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    backend.train_from_iterator(corpus, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    record = {"instruction": "name the animal", "input": "", "output": "The cat"}
    whole = tok(alpaca_prompt(record) + record["output"], add_special_tokens=False)["input_ids"]
    apart = (
        tok(alpaca_prompt(record), add_special_tokens=False)["input_ids"]
        + tok("The cat", add_special_tokens=False)["input_ids"]
    )
    assert whole != apart  # the tokenizer does what the test is about
    train, _ = build_datasets(cfg_for(write(tmp_path, [record])), tok)
    example = train[0]
    assert example["input_ids"] == whole + [tok.eos_token_id]
    supervised = [t for t, label in zip(example["input_ids"], example["labels"]) if label != IGNORE_INDEX]
    assert tok.decode(supervised[:-1]).strip() == "The cat" and supervised[-1] == tok.eos_token_id
    assert all(label == IGNORE_INDEX for label in example["labels"][: len(whole) - len(supervised) + 1])

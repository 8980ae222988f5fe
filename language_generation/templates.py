"""Prompt templates (``DATA.TEMPLATE``): how an instruction record or a conversation becomes text, with
the parts that take loss marked. Used by training (:mod:`.data`) and by ``generate``, so a model is
prompted in the format it was tuned in.

- ``alpaca``: the Stanford Alpaca prompts (with the ``### Input:`` block when a record has an input);
- ``vicuna``: Vicuna v1.1 (``SYSTEM USER: q ASSISTANT: a</s>``), the original ``train.py``;
- ``chat``: the tokenizer's own chat template, each assistant reply (up to its end-of-turn text) supervised.

"" picks alpaca for Alpaca records and vicuna for ShareGPT.
"""

from __future__ import annotations

from yacs.config import CfgNode

ALPACA_PROMPTS = {
    "prompt_input": (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
    ),
    "prompt_no_input": (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\n{instruction}\n\n### Response:"
    ),
}
VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions."
)
TEMPLATES = ("alpaca", "vicuna", "chat")


def alpaca_prompt(record: dict) -> str:
    """The Stanford Alpaca prompt for a record (with or without input)."""
    if record.get("input"):
        return ALPACA_PROMPTS["prompt_input"].format(instruction=record["instruction"], input=record["input"])
    return ALPACA_PROMPTS["prompt_no_input"].format(instruction=record["instruction"])


def user_message(record: dict) -> str:
    """An Alpaca record as one user turn (Vicuna and chat templates): the instruction, then its input."""
    return record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")


def resolve_template(cfg: CfgNode) -> str:
    """``DATA.TEMPLATE``, or the format's own (alpaca for Alpaca records, vicuna for ShareGPT)."""
    template = cfg.DATA.TEMPLATE or ("vicuna" if cfg.DATA.FORMAT == "sharegpt" else "alpaca")
    if template not in TEMPLATES:
        raise ValueError(f"DATA.TEMPLATE must be one of {TEMPLATES} or empty, got {template!r}")
    if template == "alpaca" and cfg.DATA.FORMAT == "sharegpt":
        raise ValueError("DATA.TEMPLATE alpaca is single-turn; ShareGPT conversations take vicuna or chat")
    return template


def render_prompt(tokenizer, record: dict, template: str) -> str:
    """The text a model sees before its answer (``generate``), in the template it was tuned with."""
    if template == "alpaca":
        return alpaca_prompt(record)
    if template == "vicuna":
        return f"{VICUNA_SYSTEM} USER: {user_message(record)} ASSISTANT:"
    check_chat_template(tokenizer)
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": user_message(record)}], tokenize=False, add_generation_prompt=True
    )


def check_chat_template(tokenizer) -> None:
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError(
            f"DATA.TEMPLATE chat, but the tokenizer of {tokenizer.name_or_path!r} has no chat template "
            "(use alpaca or vicuna)"
        )


def conversation(record: dict, fmt: str) -> list[tuple[str, str]]:
    """``[(role, text), ...]`` alternating user / assistant, starting with the user (ShareGPT: a leading
    assistant turn is skipped and the conversation ends at the first out-of-turn message, as Vicuna did)."""
    if fmt == "alpaca":
        return [("user", user_message(record)), ("assistant", record["output"])]
    turns = [t for t in record["conversations"] if t["from"] in ("human", "gpt")]
    if turns and turns[0]["from"] != "human":
        turns = turns[1:]
    out = []
    for i, turn in enumerate(turns):
        if turn["from"] != ("human" if i % 2 == 0 else "gpt"):
            break
        out.append(("user" if turn["from"] == "human" else "assistant", turn["value"]))
    return out


def segments(record: dict, fmt: str, template: str, tokenizer) -> list[tuple[str, bool]]:
    """The example's text as ``[(text, supervised), ...]`` in the template."""
    if template == "alpaca":
        return [(alpaca_prompt(record), False), (record["output"], True)]
    turns = conversation(record, fmt)
    if template == "vicuna":
        out, context = [], VICUNA_SYSTEM + " "
        for role, text in turns:
            if role == "user":
                context += f"USER: {text} ASSISTANT:"
            else:
                out += [(context, False), (" " + text, True)]
                context = ""
        return out
    return chat_segments(tokenizer, turns)


def chat_segments(tokenizer, turns: list[tuple[str, str]]) -> list[tuple[str, bool]]:
    """The tokenizer's chat template, split so that each assistant reply (up to its end-of-turn text) is
    supervised and everything the template puts before it is not."""
    messages = [{"role": role, "content": text} for role, text in turns]
    out, done = [], ""
    for i, (role, _) in enumerate(turns):
        if role != "assistant":
            continue
        prompt = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not (prompt.startswith(done) and full.startswith(prompt)):
            raise ValueError(
                f"the chat template of {tokenizer.name_or_path!r} does not render a conversation as prompt + "
                "reply, so the reply cannot be masked; use DATA.TEMPLATE alpaca or vicuna"
            )
        out += [(prompt[len(done) :], False), (full[len(prompt) :], True)]
        done = full
    return out

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


# ShareGPT's "from" values (any case), as FastChat reads them, and what each is in a conversation
SHAREGPT_ROLES = {
    "system": "system",
    **dict.fromkeys(("human", "user"), "user"),
    **dict.fromkeys(("gpt", "assistant", "chatgpt", "bing", "bard", "model"), "assistant"),
}


def sharegpt_role(name: str, where: str = "a ShareGPT record") -> str:
    """``user``, ``assistant`` or ``system`` for a turn's ``from``; an unknown role is named with its record."""
    role = SHAREGPT_ROLES.get(name.lower())
    if role is None:
        known = ", ".join(f"{r} ({SHAREGPT_ROLES[r]})" for r in SHAREGPT_ROLES)
        raise ValueError(f"{where}: unknown role 'from': {name!r}; known roles: {known}")
    return role


def conversation(record: dict, fmt: str) -> list[tuple[str, str]]:
    """``[(role, text), ...]``: the record's system prompt first when it has one (leading ``system`` turns),
    then user / assistant turns alternating from the user (ShareGPT: a leading assistant turn is skipped and
    the conversation ends at the first out-of-turn message, as Vicuna did)."""
    if fmt == "alpaca":
        return [("user", user_message(record)), ("assistant", record["output"])]
    turns = [(sharegpt_role(t["from"]), t["value"]) for t in record["conversations"]]
    system = [text for role, text in turns if role == "system"]
    turns = [(role, text) for role, text in turns if role != "system"]
    if turns and turns[0][0] != "user":
        turns = turns[1:]
    out = [("system", "\n".join(system))] if system else []
    for i, (role, text) in enumerate(turns):
        if role != ("user" if i % 2 == 0 else "assistant"):
            break
        out.append((role, text))
    return out


def segments(record: dict, fmt: str, template: str, tokenizer) -> list[tuple[str, bool]]:
    """The example's text as ``[(text, supervised), ...]`` in the template."""
    if template == "alpaca":
        return [(alpaca_prompt(record), False), (record["output"], True)]
    turns = conversation(record, fmt)
    if template == "vicuna":
        system = turns.pop(0)[1] if turns and turns[0][0] == "system" else VICUNA_SYSTEM
        out, context = [], system + " "
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

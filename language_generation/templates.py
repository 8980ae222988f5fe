"""Prompt templates (``DATA.TEMPLATE``): how an instruction record or a conversation becomes text, with
the parts that take loss marked. Used by training (:mod:`.data`) and by ``generate``, so a model is
prompted in the format it was tuned in.

- ``alpaca``: the Stanford Alpaca prompts (with the ``### Input:`` block when a record has an input);
- ``vicuna``: Vicuna v1.1 (``SYSTEM USER: q ASSISTANT: a</s>``), the original ``train.py``;
- ``chat``: the tokenizer's own chat template, each assistant reply (up to its end-of-turn text) supervised.

"" picks alpaca for Alpaca records and vicuna for ShareGPT. Each is a :class:`Template` in :data:`TEMPLATES`;
callers ask the template, never its name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


def alpaca_prompt(record: dict) -> str:
    """The Stanford Alpaca prompt for a record (with or without input)."""
    if record.get("input"):
        return ALPACA_PROMPTS["prompt_input"].format(instruction=record["instruction"], input=record["input"])
    return ALPACA_PROMPTS["prompt_no_input"].format(instruction=record["instruction"])


def user_message(record: dict) -> str:
    """An Alpaca record as one user turn (Vicuna and chat templates): the instruction, then its input."""
    return record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")


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


# ---------------------------------------------------------------------------------------------------
# The templates
# ---------------------------------------------------------------------------------------------------


def _alpaca_prompt(tokenizer, record: dict) -> str:
    return alpaca_prompt(record)


def _alpaca_segments(record: dict, fmt: str, tokenizer) -> list[tuple[str, bool]]:
    return [(alpaca_prompt(record), False), (record["output"], True)]


def _vicuna_prompt(tokenizer, record: dict) -> str:
    return f"{VICUNA_SYSTEM} USER: {user_message(record)} ASSISTANT:"


def _vicuna_segments(record: dict, fmt: str, tokenizer) -> list[tuple[str, bool]]:
    turns = conversation(record, fmt)
    system = turns.pop(0)[1] if turns and turns[0][0] == "system" else VICUNA_SYSTEM
    out, context = [], system + " "
    for role, text in turns:
        if role == "user":
            context += f"USER: {text} ASSISTANT:"
        else:
            out += [(context, False), (" " + text, True)]
            context = ""
    return out


def _chat_prompt(tokenizer, record: dict) -> str:
    check_chat_template(tokenizer)
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": user_message(record)}], tokenize=False, add_generation_prompt=True
    )


def _chat_segments(record: dict, fmt: str, tokenizer) -> list[tuple[str, bool]]:
    return chat_segments(tokenizer, conversation(record, fmt))


def _no_check(tokenizer) -> None:
    return None


@dataclass(frozen=True)
class Template:
    """One prompt format (``DATA.TEMPLATE``).

    Attributes:
        name: its ``DATA.TEMPLATE`` value.
        prompt: ``prompt(tokenizer, record) -> text`` the model sees before its answer (``generate``).
        segments: ``segments(record, fmt, tokenizer) -> [(text, supervised), ...]``, a training example.
        multi_turn: it renders whole conversations (ShareGPT records), not only one instruction.
        own_special_tokens: the template writes its own leading and end-of-turn tokens, so the tokenizer adds
            none and no EOS is appended.
        check: ``check(tokenizer)`` stops, naming the problem, when the tokenizer cannot render it.
    """

    name: str
    prompt: Callable[[object, dict], str]
    segments: Callable[[dict, str, object], list[tuple[str, bool]]]
    multi_turn: bool
    own_special_tokens: bool = False
    check: Callable[[object], None] = _no_check


TEMPLATES: dict[str, Template] = {}


def register_template(template: Template) -> Template:
    """Adds ``template`` to :data:`TEMPLATES`; a name taken twice stops."""
    if template.name in TEMPLATES:
        raise ValueError(f"DATA.TEMPLATE {template.name!r} is registered twice")
    TEMPLATES[template.name] = template
    return template


register_template(Template("alpaca", _alpaca_prompt, _alpaca_segments, multi_turn=False))
register_template(Template("vicuna", _vicuna_prompt, _vicuna_segments, multi_turn=True))
register_template(
    Template("chat", _chat_prompt, _chat_segments, multi_turn=True, own_special_tokens=True, check=check_chat_template)
)
# what DATA.TEMPLATE "" means for a DATA.FORMAT (alpaca for any other)
FORMAT_TEMPLATES = {"sharegpt": "vicuna"}


def resolve_template(cfg: CfgNode) -> Template:
    """``DATA.TEMPLATE``, or the format's own (alpaca for Alpaca records, vicuna for ShareGPT)."""
    name = cfg.DATA.TEMPLATE or FORMAT_TEMPLATES.get(cfg.DATA.FORMAT, "alpaca")
    if name not in TEMPLATES:
        raise ValueError(f"DATA.TEMPLATE must be one of {tuple(TEMPLATES)} or empty, got {name!r}")
    template = TEMPLATES[name]
    if cfg.DATA.FORMAT == "sharegpt" and not template.multi_turn:
        multi = [t.name for t in TEMPLATES.values() if t.multi_turn]
        raise ValueError(f"DATA.TEMPLATE {name} is single-turn; ShareGPT conversations take one of {multi}")
    return template


def render_prompt(tokenizer, record: dict, template: str) -> str:
    """The text a model sees before its answer (``generate``), in the template (by name) it was tuned with."""
    return TEMPLATES[template].prompt(tokenizer, record)


def segments(record: dict, fmt: str, template: str, tokenizer) -> list[tuple[str, bool]]:
    """The example's text as ``[(text, supervised), ...]`` in the template named ``template``."""
    return TEMPLATES[template].segments(record, fmt, tokenizer)

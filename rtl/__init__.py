"""RTL of sparsim's engines (Amaranth) and their Verilator/cocotb harness.

- :mod:`rtl.dsp_chain`: the ``dsp_chain`` engine (docs/dsp_chain.md).
- :mod:`rtl.verilog`: reproducible Verilog of a hardware configuration.
- :mod:`rtl.verilator`: lint, build once per design point, run and verify Programs.
- :mod:`rtl.cocotb_bench`: the memory model and cocotb test module used by the harness.
"""

"""RTL of sparsim's engines (Amaranth) and their Verilator/cocotb harness.

- ``rtl.<engine>``: each engine's components (docs/<engine>.md), reached through its
  ``Engine.rtl_top`` (sparsim/engine.py).
- :mod:`rtl.shell`: what every engine top shares: its port signature and the loader, receiver
  and store components.
- :mod:`rtl.verilog`: reproducible Verilog of a hardware configuration.
- :mod:`rtl.verilator`: lint, build once per distinct Verilog, run and verify Programs.
- :mod:`rtl.cocotb_bench`: the memory model and cocotb test module used by the harness.
"""

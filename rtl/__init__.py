"""RTL of sparsim's engines (Amaranth) and their Verilator/cocotb harness.

- ``rtl.<engine>``: each engine's components (docs/<engine>.md), reached through its
  ``Engine.rtl_top`` (sparsim/engine.py).
- :mod:`sparsim.rtl.shell`: what every engine top shares: its port signature and the loader, receiver
  and store components.
- :mod:`sparsim.rtl.verilog`: reproducible Verilog of a hardware configuration.
- :mod:`sparsim.rtl.verilator`: lint, build once per distinct Verilog, run and verify Programs.
- :mod:`sparsim.rtl.cocotb_bench`: the memory model and cocotb test module used by the harness.
"""

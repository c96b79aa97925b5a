"""Bench of the ``dsp_chain`` engine: the per-cycle driver (:mod:`.driver`, on the shared memory
model of :mod:`sparsim.simulator.memory`), the job/result files and the cocotb test module that the
Verilator harness (:mod:`sparsim.rtl.verilator`) runs; :mod:`sparsim.rtl.amaranth_sim` runs the same driver."""

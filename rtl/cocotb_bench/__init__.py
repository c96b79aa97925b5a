"""cocotb bench of the ``dsp_chain`` engine: the job/result files and the test module that the
Verilator harness (:mod:`rtl.verilator`) runs, on the shared memory model of
:mod:`simulator.memory`."""

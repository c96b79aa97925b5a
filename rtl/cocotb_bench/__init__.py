"""cocotb bench of the ``dsp_chain`` engine: the memory model, the job/result files and the test
module that the Verilator harness (:mod:`rtl.verilator`) runs."""

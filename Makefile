# Everything a fresh machine needs: python3 (with venv), make, g++ and perl.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: all demo test test-fast bench reproduce clean distclean

all: test

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip==25.3"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

demo: $(STAMP)
	$(VENV)/bin/sparsim sweep examples/quickstart.yaml

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not verilator and not synth"

bench: $(STAMP)
	$(PY) benchmarks/bench_sim_vs_rtl.py
	$(PY) benchmarks/bench_llama_decode.py
	$(PY) benchmarks/bench_sweep.py
	$(PY) benchmarks/bench_fmax.py --points tiny,mid

# The paper reproductions: reports/sat_bdwp/ (SAT/BDWP on nm_train), reports/centaur/ (Centaur on recsys).
reproduce: $(STAMP)
	$(PY) reports/sat_bdwp.py
	$(PY) reports/centaur.py
	$(PY) reports/centaur_gather.py

clean:
	rm -rf build sim_build .pytest_cache .hypothesis reports/quickstart reports/sat_bdwp reports/centaur
	find . -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

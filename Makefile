# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.netcarve-installed
PIP    := $(BIN)/python -m pip

.PHONY: demo test lint typecheck pytest setup clean bench

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt src/netcarve/ir/csrc/fixed_quantize.cpp
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	$(BIN)/python -m netcarve.ir.fused
	touch $(STAMP)

# train + test a registered model, a short joint (width + quantization) search, all on digits, then the
# search's best trial exported to Verilog with alkaid and checked bit for bit against netcarve, both by alkaid's
# interpreter and by the generated Verilog itself, built and run with Verilator (--simulate)
demo: $(STAMP)
	$(BIN)/netcarve train hls4ml-jet digits --project demo --config configs/digits_train.toml
	$(BIN)/netcarve test hls4ml-jet digits --load runs/demo/latest/best.pt --split test --project demo
	$(BIN)/netcarve search --config configs/demo_search_digits.toml --project demo-search
	$(BIN)/netcarve export runs/demo-search/latest --to alkaid --simulate --output runs/demo-search/latest/firmware-alkaid

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(PIP) install -q -c constraints.txt -e '.[dev,bench]'
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/analysis_bench.py
	$(BIN)/python bench/search_bench.py
	$(BIN)/python bench/population_bench.py
	$(BIN)/python bench/step_floor.py
	$(BIN)/python bench/backend_compare.py
	$(BIN)/python bench/precision_bench.py

clean:
	rm -rf $(VENV) build src/*.egg-info

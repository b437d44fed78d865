# make-pretrain-records: set-up, build, tests and benchmarks.
# `make demo` and `make test` do whatever set-up is missing on a fresh machine.

VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/make-pretrain-records
CXX ?= g++
# The TensorFlow to install when the venv has none (`tensorflow`, or a TPU VM's own build, also do).
TF_EXTRA ?= cpu
BUILD := build
CORE := ops/cc/core
export TF_CPP_MIN_LOG_LEVEL ?= 2
export TF_ENABLE_ONEDNN_OPTS ?= 0

.PHONY: dev ops core-test test bench lint format demo clean

dev: $(VENV)/.installed ops

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -qq --upgrade pip
	if $(PY) -c "import tensorflow" 2>/dev/null; then \
	  $(PY) -m pip install -qq -e '.[test,beam]'; \
	else \
	  $(PY) -m pip install -qq -e '.[$(TF_EXTRA),test,beam]'; \
	fi
	touch $@

ops: $(VENV)/.installed
	$(PY) -m pretrain_records.ops.compile_library --cxx $(CXX)

CORE_FLAGS := -std=c++17 -O2 -Wall -Wextra -Werror

HARNESS := $(CORE)/test_harness.h $(CORE)/row_random.h

$(BUILD)/core_test: $(CORE)/ngram_masker_test.cc $(CORE)/ngram_masker.cc $(CORE)/ngram_masker.h $(CORE)/ngram_masker_impl.h $(HARNESS)
	mkdir -p $(BUILD)
	$(CXX) $(CORE_FLAGS) -o $@ $(CORE)/ngram_masker_test.cc $(CORE)/ngram_masker.cc

$(BUILD)/encoder_test: $(CORE)/example_encoder_test.cc $(CORE)/example_encoder.cc $(CORE)/example_encoder.h $(HARNESS)
	mkdir -p $(BUILD)
	$(CXX) $(CORE_FLAGS) -o $@ $(CORE)/example_encoder_test.cc $(CORE)/example_encoder.cc

$(BUILD)/instance_maker_test: $(CORE)/instance_maker_test.cc $(CORE)/instance_maker.cc $(CORE)/instance_maker.h $(HARNESS)
	mkdir -p $(BUILD)
	$(CXX) $(CORE_FLAGS) -o $@ $(CORE)/instance_maker_test.cc $(CORE)/instance_maker.cc

core-test: $(BUILD)/core_test $(BUILD)/encoder_test $(BUILD)/instance_maker_test
	$(BUILD)/core_test
	$(BUILD)/encoder_test
	$(BUILD)/instance_maker_test

test: dev core-test
	$(PY) -m pytest -q -n 2 tests  # two test processes: the suite runs in about half the time

bench: dev
	$(PY) bench/run.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check cli ops pipeline configs tests bench
	$(VENV)/bin/ruff format --check cli ops pipeline configs tests bench

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix cli ops pipeline configs tests bench
	$(VENV)/bin/ruff format cli ops pipeline configs tests bench

demo: dev
	rm -rf demo-out
	$(CLI) build configs/sample/us-constitution.txt -o demo-out --config configs/tiny.yaml
	$(CLI) inspect demo-out -n 2 --stats

clean:
	rm -rf $(BUILD) demo-out ops/_pretrain_records_ops.so ops/_pretrain_records_ops.stamp.json .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +

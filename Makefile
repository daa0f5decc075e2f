PYTHON ?= python3

.PHONY: install test bench demo fuzz

install:
	$(PYTHON) -m pip install -q -e '.[test]'

test:
	$(PYTHON) -m pytest -q tests

demo: install
	medcodec bench

bench:
	$(PYTHON) benchmarks/roundtrip_corpus.py
	$(PYTHON) benchmarks/fast_vs_jpegxl.py

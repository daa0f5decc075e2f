PYTHON ?= python3
CORPUS ?= ../shared/corpus
RESULTS = benchmarks/results

.PHONY: install test demo bench roundtrip fuzz

# Install medcodec and its test tools from this checkout (torch 2.13.0, the CPU build).
install:
	$(PYTHON) -m pip install -q -e '.[test]'

# The test suite (what CI runs). Needs neither ../shared nor a GPU.
test:
	$(PYTHON) -m pytest -q tests

# Install, then compare medcodec with the classical codecs on the bundled example images.
demo: install
	medcodec bench --mode all

# Every corpus file through encode/decode (DICOM byte-identical, images pixel-identical).
roundtrip:
	$(PYTHON) benchmarks/roundtrip_corpus.py $(CORPUS)

# The committed results: all modes and all classical codecs on the test split, one run; the overall
# numbers are also recorded in models/manifest.json next to the weights they measure. The run (~2 h on
# 2 cores) journals each image: `make bench` again resumes one cut short; after a code change it refuses
# the old journal - delete build/test_all.journal.jsonl to measure afresh.
bench:
	medcodec bench $(CORPUS)/test --mode all --journal build/test_all.journal.jsonl \
		--json $(RESULTS)/test_all.json --csv $(RESULTS)/test_all.csv --plot $(RESULTS)/test_all.png
	$(PYTHON) benchmarks/record_test_bpp.py $(RESULTS)/test_all.json

# A longer decoder fuzzing campaign than `make test`: 3000 examples per test and method (CPU, slow).
fuzz:
	MEDCODEC_FUZZ_EXAMPLES=3000 $(PYTHON) -m pytest -q tests/test_fuzz_decoder.py --hypothesis-show-statistics

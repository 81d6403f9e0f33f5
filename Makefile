# The two commands of the README, and a few more for developers.
#   make demo   install into $(VENV), then run the main job on the embedded Shapes data
#               (all five tasks in one model: train, evaluate, infer on a val image)
#   make test   install into $(VENV), then run the test suite
#   make test-quick   the edit loop: the suite without the tests marked slow (~2.5 min)
#   make docs   build the documentation site into site/ (strict: a warning or broken link fails)
VENV ?= .venv
PY := $(VENV)/bin/python
SHAPES ?= data/shapes
DEMO_DIR ?= work_dirs/demo
PYTEST_ARGS ?=

.PHONY: env demo test test-quick docs lint tox clean

env:
	@# (UserWarnings of the build backend, e.g. setuptools on editable installs, are not the user's)
	PYTHONWARNINGS=ignore::UserWarning bash scripts/bootstrap.sh $(VENV)

# The main job: all five tasks in one generalist (configs/up2_tiny_shapes_generalist.py), trained
# and evaluated on Shapes (generated on first use), then every task on a val image it never saw.
demo: env
	@mkdir -p $(DEMO_DIR) && date +%s > $(DEMO_DIR)/.started
	$(VENV)/bin/up2 train up2_tiny_shapes_generalist --work-dir $(DEMO_DIR)
	$(VENV)/bin/up2 infer up2_tiny_shapes_generalist "$$(cat $(DEMO_DIR)/last_checkpoint)" \
		$(SHAPES)/images/val/000000.png --out $(DEMO_DIR)/demo.png \
		--texts "one large red circle." "two small blue squares." "one green star in the centre."
	@echo "main job: $$(( $$(date +%s) - $$(cat $(DEMO_DIR)/.started) )) s from data generation to this line (picture: $(DEMO_DIR)/demo.png)"

# Two workers, one thread each, a test file per worker at a time (its module fixtures and fixed
# torchrun ports stay in one process): 16.6 min instead of 27.6 on 2 idle cores, as one worker's
# imports, subprocess start-ups and I/O overlap the other's computing.  TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: env
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# Everything but the tests marked `slow` (trainings, subprocess runs, exports): every unit of
# the core and the plugins, in under 5 minutes on 2 cores; `make test` before a push.
test-quick: env
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow" -q $(PYTEST_ARGS)

# The documentation site (mkdocs.yml; MkDocs Material + mkdocstrings), offline, strict; the
# result tables in it are written from benchmarks/results/*.json first.
docs: env
	$(PY) scripts/docs_tables.py
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

lint: env
	$(VENV)/bin/ruff check .

tox: env
	$(VENV)/bin/tox

clean:
	rm -rf work_dirs .pytest_cache .ruff_cache .tox site

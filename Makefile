# The two commands of the README, and a few more for developers.
#   make demo   install into $(VENV), then run the main job on the embedded Shapes data
#   make test   install into $(VENV), then run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
SHAPES ?= data/shapes
PYTEST_ARGS ?=

.PHONY: env demo test lint tox clean

env:
	bash scripts/bootstrap.sh $(VENV)

demo: env
	$(VENV)/bin/up2 train up2_tiny_shapes --work-dir work_dirs/up2_tiny_shapes
	$(VENV)/bin/up2 infer up2_tiny_shapes "$$(cat work_dirs/up2_tiny_shapes/last_checkpoint)" \
		$(SHAPES)/images/val/000000.png --task classification
	$(VENV)/bin/up2 infer up2_tiny_shapes "$$(cat work_dirs/up2_tiny_shapes/last_checkpoint)" \
		$(SHAPES)/images/val/000000.png --task retrieval \
		--texts "a large red circle" "two small blue squares" "one green star in the centre"

test: env
	$(PY) -m pytest $(PYTEST_ARGS)

lint: env
	$(VENV)/bin/ruff check .

tox: env
	$(VENV)/bin/tox

clean:
	rm -rf work_dirs .pytest_cache .ruff_cache .tox

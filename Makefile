# The two commands of the README. Both set everything up first (idempotent: tools/setup.sh).
.PHONY: setup demo test compiled-mmcv bench

setup:
	@bash tools/setup.sh

demo: setup
	.venv/bin/unmix demo

test: setup
	.venv/bin/python -m pytest -q -p no:cacheprovider tests

compiled-mmcv:
	@bash tools/setup.sh --compiled-mmcv

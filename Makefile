# The two commands of the README. Both set everything up first (idempotent: tools/setup.sh).
.PHONY: setup demo test compiled-mmcv bench

setup:
	@bash tools/setup.sh

demo: setup
	.venv/bin/unmix demo

# Lint and the layer contracts (pyproject.toml) first: a back-edge fails CI before any test runs.
test: setup
	.venv/bin/ruff check .
	.venv/bin/lint-imports --no-cache
	.venv/bin/python -m pytest -q -p no:cacheprovider tests

compiled-mmcv:
	@bash tools/setup.sh --compiled-mmcv

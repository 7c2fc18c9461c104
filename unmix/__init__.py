"""unmix: transfer evaluation for self-supervised encoders.

The package is two things, the bottom and the top of the project's four layers:
- `unmix.core`: errors, atomic writes, result records, environment info, config helpers, logs.
  Imports nothing of the project.
- the app: `unmix.cli` (the `unmix` command), `unmix.doctor`, `unmix.demo`. May import
  everything below it.

In between, each importing only the layers below it: `pretrain` (Un-Mix pretraining) then
`transfer` (conversion, frozen-feature and detection evaluation, reports). `pyproject.toml`'s
import-linter contracts enforce this.
"""

__version__ = "0.1.0"

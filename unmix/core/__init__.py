"""The bottom layer: what every other layer may use, and that imports nothing of the project.

- `errors`: `UnmixError`, the one exception the CLI turns into a one-line message.
- `files`: atomic writes (temp file, then rename) and `sha256_file`.
- `records`: the result-record schema `unmix.result/1` and its I/O.
- `env`: the environment block of a record (versions, commit, device); callers pass what only
  they know (the mmcv kernels in use).
- `config`: the shared config helpers (mmengine `Config` files, to-plain, KEY=VALUE options).
- `logs`: the one work-dir logger.

May import: the standard library, torch, numpy, and (in `config` only) mmengine's config module.
Layers above it: `pretrain` <- `transfer` <- the `unmix` app (CLI, doctor, demo).
"""

"""The bottom layer: what every other layer may use, and that imports nothing of the project.

- `errors`: `UnmixError`, the one exception the CLI turns into a one-line message.
- `files`: the write-safety rules: atomic files and directories (temp, then rename), modes that
  respect the umask, one-line OSErrors, orphaned temp files of killed saves, outputs checked
  against inputs, names kept inside their root; and `sha256_file`.
- `records`: the result-record schema `unmix.result/1` and its I/O; the rerun rule (a finished
  record is replaced only with `--force`) and default labels unique per checkpoint.
- `signals`: SIGTERM handled as Ctrl-C (record `interrupted`, resumable).
- `env`: the environment block of a record (versions, commit, device); callers pass what only
  they know (the mmcv kernels in use).
- `config`: the shared config helpers (mmengine `Config` files, to-plain, KEY=VALUE options).
- `logs`: the one work-dir logger.

May import: the standard library, torch, numpy, and (in `config` only) mmengine's config module.
Layers above it: `pretrain` <- `transfer` <- the `unmix` app (CLI, doctor, demo).
"""

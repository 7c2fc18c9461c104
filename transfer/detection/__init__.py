"""Detection and instance-segmentation transfer on mmdet 3.3: the protocols (a registry of thin
overrides of mmdet's configs, BN modes, linear lr scaling), our datasets and metrics (registered
in mmdet's registries), the C4 box head, `unmix finetune`, `unmix evaluate` and `unmix sweep`.

May import: `unmix.core`, `pretrain` (architectures), `transfer.convert`, `transfer.stack` and the
OpenMMLab packages. Imported by `transfer.report` and the `unmix` app.
"""

"""The frozen-feature evaluations of any checkpoint: `unmix knn` (weighted kNN), `unmix linear`
(linear probe) and `unmix flatness` (the paper's Figure 5), with what they share in `common`
(reading checkpoints through `transfer.convert`, datasets, work dirs, the record's checkpoint
block).

May import: `unmix.core`, `pretrain` (datasets, the kNN primitive), the torch-only part of
`transfer.convert`. Never mmdet/mmcv: a broken detection stack must not stop `unmix knn`.
"""

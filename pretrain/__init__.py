"""Un-Mix pretraining (layer 2 of 4): image mixtures in input and label space on MoCo v1/v2,
SimCLR, BYOL and SwAV, final form (`mixing`) and first form (`first_form`).

Holds: `backbones` (ResNet builders), `mixing`, `losses`, `methods/` (one module per method),
`data` and `augment` (datasets and views), `first_form`, `optim`, `distributed`, `train` (the
`unmix pretrain` loop), `checkpoint` and `schema` (the checkpoint writer and its layout),
`features` and `knn` (feature extraction and the weighted-kNN primitive of the loop's monitor).

May import: `unmix.core` only (and torch, torchvision, numpy). Imported by `transfer` and the app.
"""

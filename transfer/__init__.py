"""Everything that evaluates a checkpoint (layer 3 of 4).

- `convert/`: any ResNet checkpoint -> torchvision/mmdet-named tensors (torch only), plus its mmdet
  part (backbone config, verification) and `unmix convert`;
- `frozen/`: `unmix knn|linear|flatness` on frozen features (never mmdet);
- `stack/`: the OpenMMLab stack made usable (mmcv kernel stand-in, torch/numpy fixes);
- `detection/`: protocols, datasets, metrics, `unmix finetune|evaluate|sweep`;
- `report/`: `unmix report` (tables, rendering, plots).

Inside: detection | frozen > report | convert > stack. May import `pretrain` and `unmix.core`;
imported only by the app (`unmix.cli`, `unmix.doctor`, `unmix.demo`). pyproject.toml's
import-linter contracts enforce both.
"""

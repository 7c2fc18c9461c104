"""`unmix convert`: any ResNet checkpoint -> a verified mmdetection backbone checkpoint.

Two parts, the second built on the first:
- torch only (what `unmix knn|linear|flatness` read checkpoints with; no mmdet, mmcv, mmengine):
  `load` (reading a file without running code from it), `formats` (every format as data: where
  it comes from, how it is recognised, its encoders and rename rules), `rules` (the pure
  conversion `convert_state_dict`: a loaded object -> torchvision-named ResNet tensors),
  `resnet_d` (ResNet-D: its reference encoder and the timm/mmpretrain/mmdet deep-stem names) and
  `conversion` (files in and out: `convert_file`, `save_conversion`, `load_conversion`,
  `build_encoder`);
- mmdet: `mmdet_cfg` (the mmdet backbone config of a conversion), `verify` (mmdet's ResNet built
  from that config loads the tensors strictly and matches the source encoder's features;
  `convert_and_verify`) and `cli` (the command).

    from transfer.convert.verify import convert_and_verify
    from transfer.convert.conversion import save_conversion
    conv = convert_and_verify("moco_v2_800ep_pretrain.pth.tar")   # detect, convert, verify
    save_conversion(conv, "checkpoints/moco_v2.pth")                # {'state_dict', 'meta'}

May import: `unmix.core`, `pretrain.backbones`; the mmdet part also `transfer.stack`.
Formats and their rules: `formats.FORMATS` and docs/convert.md.
"""

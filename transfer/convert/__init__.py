"""`unmix convert`: any ResNet checkpoint -> a verified mmdetection backbone checkpoint.

    from transfer.convert import convert_file, save_conversion
    conv = convert_file("moco_v2_800ep_pretrain.pth.tar")        # detect, convert, verify
    save_conversion(conv, "checkpoints/moco_v2.pth")              # {'state_dict', 'meta'}
    cfg = mmdet_backbone_cfg(conv, checkpoint="checkpoints/moco_v2.pth")

Formats and their rules: `FORMATS` (transfer/convert/formats.py) and docs/convert.md.
"""
from transfer.convert.core import CONVERTER_VERSION, Conversion, convert_state_dict, infer_arch
from transfer.convert.formats import FORMATS, detect
from transfer.convert.io import build_encoder, convert_file, load_conversion, save_conversion
from transfer.convert.mmdet_cfg import mmdet_backbone_cfg

__all__ = [
    "CONVERTER_VERSION", "Conversion", "FORMATS", "build_encoder", "convert_file",
    "convert_state_dict", "detect", "infer_arch", "load_conversion", "mmdet_backbone_cfg",
    "save_conversion",
]

"""The options of `unmix convert`, apart from the converter: importing this imports no torch, so
`unmix convert --help` answers at once. The arch and format names are checked against
`pretrain.backbones.ARCHS` and `formats.FORMATS` when the command runs (transfer/convert/cli.py)."""
from __future__ import annotations

import argparse


def convert(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="checkpoint to convert (.pth, .pth.tar, .ckpt, .pkl, .safetensors)")
    p.add_argument("-o", "--output", required=True, help="where to write the mmdet backbone checkpoint")
    p.add_argument("--arch", help="expected arch: resnet18/34/50/101/152 and the others docs/convert.md "
                   "lists (default: inferred from the tensors)")
    p.add_argument("--format", dest="fmt",
                   help="source format (default: detected); the names are in docs/convert.md")
    p.add_argument("--encoder", help="which encoder to take, by the format's name for it "
                   "(e.g. query/key, teacher/student, online/momentum, model/ema) or a key prefix")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow arbitrary pickled objects (runs code from the file: trusted files only)")
    p.add_argument("--stem-padding", type=int, metavar="N",
                   help="padding of a 3x3 (CIFAR) conv1 when the file does not record it "
                   "(default: from evidence in the file, else 1, said in the summary)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the numeric mmdet-vs-source check (the structural check always runs)")

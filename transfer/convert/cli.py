"""`unmix convert SRC -o DST`: detect, convert, verify, write; print what was kept and dropped."""
from __future__ import annotations

import argparse
from pathlib import Path

from pretrain.backbones import ARCHS
from transfer.convert import arguments
from transfer.convert.conversion import save_conversion
from transfer.convert.formats import FORMATS
from transfer.convert.verify import convert_and_verify
from unmix.core import files
from unmix.core.errors import UnmixError


add_arguments = arguments.convert  # the options, in a module without torch (fast --help)


def stem_text(conv) -> str:
    m = conv.meta
    if conv.stem == "deep":
        return f"deep (ResNet-D: three 3x3 convs, avg-pool shortcuts; {m.get('deep_stem_layout')} names)"
    if conv.stem != "cifar":
        return conv.stem
    return f"cifar (3x3 conv1, padding {m.get('stem_padding', 1)}: {m.get('stem_padding_from', '?')})"


def summary(conv, dst: Path | None = None) -> str:
    m = conv.meta
    rows = [("format", f"{conv.format} ({m.get('format_title', '')})"),
            ("encoder", f"{conv.encoder} (keys {m.get('encoder_prefix') or '<root>'!r}"
                        f"{', in ' + repr(m['container']) if m.get('container') else ''})"),
            ("arch", f"{conv.arch}, stem {stem_text(conv)}"),
            ("kept", f"{len(conv.state_dict)} tensors")]
    for role, keys in sorted(conv.dropped.items()):
        rows.append((f"dropped: {role}", f"{len(keys)} tensors (e.g. {keys[0]})"))
    if m.get("inert_globals"):
        names = m["inert_globals"]
        rows.append(("not run", f"{len(names)} pickled globals read as inert data "
                                f"({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"))
    for note in m.get("assumptions", []):
        rows.append(("assumed", note))
    if m.get("split_bn_collated"):
        rows.append(("collated", f"SplitBatchNorm running statistics of {m['split_bn_collated']} splits "
                                 "averaged, as lightly's SplitBatchNorm does in eval mode"))
    if m.get("filled_defaults"):
        rows.append(("filled", f"{len(m['filled_defaults'])} missing num_batches_tracked with 0"))
    v = m.get("verification")
    rows.append(("verified", "structure only (--no-verify)" if not v else
                 f"mmdet vs source, max |diff| {v['max_abs_diff']:.2e} on {tuple(v['input'])}"))
    if dst is not None:
        rows.append(("written", str(dst)))
    w = max(len(r[0]) for r in rows)
    return "\n".join(f"  {k:<{w}}  {v}" for k, v in rows)


def check_names(args: argparse.Namespace) -> None:
    """--arch and --format against the tables themselves (argparse's choices would need them
    before --help, and they import torch)."""
    for flag, value, table in (("--arch", args.arch, ARCHS), ("--format", args.fmt, FORMATS)):
        if value is not None and value not in table:
            raise UnmixError(f"{flag}: unknown {value!r} (choose from {', '.join(table)})")


def run(args: argparse.Namespace) -> int:
    check_names(args)
    # Before any work: an output that is a directory, sits under a file, or is the source itself
    # (`convert latest.pth -o latest.pth` would replace a pretraining checkpoint, momentum encoder,
    # queue and optimizer state, with a backbone).
    dst = files.check_output(args.output, [args.src])
    files.remove_orphans(dst.parent, dst.name)
    conv = convert_and_verify(args.src, arch=args.arch, fmt=args.fmt, encoder=args.encoder,
                              trust_pickle=args.trust_pickle, verify=not args.no_verify,
                              stem_padding=args.stem_padding)
    dst = save_conversion(conv, dst)
    print(f"unmix convert: {args.src}")
    print(summary(conv, dst))
    return 0

"""`unmix data check --protocol P --data-root D`: only the data check `unmix finetune` makes before
training (transfer/detection/datacheck.py): every annotation of every split the protocol uses,
parsed and summarised in one table; exit 1 with a one-line error on the first unreadable file."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from unmix.core.config import parse_options
from transfer.detection import arguments, datacheck, options, protocols

add_arguments = arguments.data


def run(args: argparse.Namespace) -> int:
    from transfer.detection.datasets import standard_classes

    protocols.register_modules()
    meta = protocols.get(args.protocol)
    cfg = protocols.load_config(args.protocol)
    options.apply(cfg, parse_options(args.cfg_options))
    protocols.set_data_root(cfg, str(Path(args.data_root).expanduser().absolute()))
    protocols.check_data(cfg, meta["dataset"])
    protocols.use_unmix_datasets(cfg)
    dc = datacheck.check(cfg, meta["dataset"], standard_classes(meta["dataset"]), args.classes)
    print(datacheck.table(dc), end="")
    if args.work_dir:
        datacheck.write(dc, [], Path(args.work_dir))
        print(f"written: {Path(args.work_dir) / 'data_check.txt'}", file=sys.stderr)
    return 0

"""`unmix knn`: weighted k-nearest-neighbour accuracy of a frozen encoder (k 200, t 0.1 by
default: the classifier `pretrain.knn.knn_predict` of the MoCo CIFAR demo)."""
from __future__ import annotations

import argparse
import time

from pretrain.knn import knn_predict
from pretrain.features import extract_features
from transfer.frozen import arguments
from transfer.frozen import common as fx
from unmix.core import records
from unmix.core.env import env_info
from unmix.core.errors import UnmixError
from unmix.core.logs import work_dir_log


add_arguments = arguments.knn  # the options, in a module without torch (fast --help)


def run(args: argparse.Namespace) -> int:
    arguments.check_knn(args)
    if args.k < 1:
        raise UnmixError(f"--k {args.k}: must be at least 1")
    if args.t <= 0:
        raise UnmixError(f"--t {args.t}: must be positive")
    device, label, test_split, encoder, ckpt = fx.prepare(args)
    train_set = fx.build_dataset(args.dataset, args.data_root, args.train_split,
                                 image_size=args.image_size)
    test_set = fx.build_dataset(args.dataset, args.data_root, test_split, image_size=args.image_size)
    num_classes = fx.num_classes_of(args.dataset, train_set)

    work_dir = fx.work_dir_for(args, "knn", label, ckpt)
    # backbone keeps the historical name; head records are another protocol, tabulated apart
    suffix = "-head" if args.features == "head" else ""
    protocol = {"name": f"knn-k{args.k}-t{args.t:g}{suffix}", "task": "classification",
                "dataset": args.dataset, "data_root": args.data_root,
                "train_split": args.train_split, "test_split": test_split,
                "k": args.k, "t": args.t, "seed": args.seed, "features": args.features,
                "batch_size_total": args.batch_size}
    record = records.new_record("knn", ckpt, protocol, env=env_info(device))
    t0 = time.time()
    with work_dir_log(work_dir, "knn") as log:
        log.info("knn: %s (%s) on %s [%s -> %s], k=%d t=%g, features %s, device %s", label, ckpt["path"],
                 args.dataset, args.train_split, test_split, args.k, args.t, args.features, device)
        with fx.failure_recorded(record, work_dir, log):
            fx.seed_everything(args.seed)
            encoder.to(device)
            bank, bank_labels = extract_features(
                encoder, fx.make_loader(train_set, args.batch_size, args.workers, device=device),
                device, fx.amp_dtype(args.amp, device), desc=f"bank ({args.train_split})")
            log.info("bank: %d x %d features", *bank.shape)
            feats, labels = extract_features(
                encoder, fx.make_loader(test_set, args.batch_size, args.workers, device=device),
                device, fx.amp_dtype(args.amp, device), desc=f"query ({test_split})")
            log.info("queries: %d x %d features", *feats.shape)
            scores = knn_predict(feats, bank.to(device), bank_labels, num_classes, args.k, args.t)
            metrics = fx.topk_accuracy(scores, labels)
        record["details"] = {"num_classes": num_classes, "bank_size": int(bank.size(0)),
                             "num_test": int(feats.size(0)), "feature_dim": int(bank.size(1))}
        if args.features == "head":
            record["details"]["head_source"] = encoder.source
        records.finish(record, metrics, wall_time_s=round(time.time() - t0, 3))
        path = records.write(record, work_dir)
        log.info("top1 %.2f  top5 %.2f  -> %s", metrics["top1"], metrics["top5"], path)
    print(f"{label}\tknn k={args.k} t={args.t:g} {args.features}\t{args.dataset}\ttop1 {metrics['top1']:.2f}\t"
          f"top5 {metrics['top5']:.2f}\t{path}")
    return 0

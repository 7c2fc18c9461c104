# MoCo's VOC protocol: facebookresearch/moco detection/configs/pascal_voc_R_50_C4_24k_moco.yaml on
# pascal_voc_R_50_C4_24k.yaml and Base-RCNN-C4-BN.yaml (initial commit 90e244a2, 2020-03-22; the
# Un-Mix repository's copies are byte-identical), with detectron2 v0.1.1's defaults for the rest,
# reproduced on mmdet 3.3: Faster R-CNN R50-C4, VOC07+12 trainval -> VOC2007 test, 24k iterations
# at total batch 16, AP50 / AP (.50:.95) / AP75 with the VOC07 11-point AP. Each line below that
# differs from mmdet 3.3's C4 VOC config says which MoCo/detectron2 setting it follows
# ("moco.yaml", "24k.yaml", "Base.yaml" for the three files, "d2 defaults.py:N" for detectron2).
# Unchanged because mmdet's C4 VOC config already has detectron2's values: multi-scale training
# (shorter side 480..800 step 32, max 1333, 24k.yaml MIN_SIZE_TRAIN) and 800 test (MIN_SIZE_TEST),
# flip 0.5, anchors 32..512 x {0.5, 1, 2} on res4, RPN 12000/2000 proposals (train) and 6000/1000
# (test, Base.yaml), no border filter, L1 box losses (SMOOTH_L1_BETA 0), RoIAlign 14x14 aligned
# with adaptive sampling (ROIAlignV2), 512 RoIs at 25% positives, 0.05 / 0.5 / 100 at test, lr
# 0.02, momentum 0.9, weight decay 1e-4 (Base.yaml, d2 defaults.py:498-500).
# `voc-faster-rcnn-c4-mmselfsup` is mmselfsup 1.x's port of this protocol.
_base_ = 'mmdet::pascal_voc/faster-rcnn_r50-caffe-c4_ms-18k_voc0712.py'

# Base.yaml RESNETS.NORM "SyncBN": in detectron2 v0.1.1 its NaiveSyncBatchNorm; mmdet's SyncBN is
# torch's SyncBatchNorm (same statistics for equal per-GPU batches; docs/transfer.md).
norm = dict(type='SyncBN', requires_grad=True)
model = dict(
    data_preprocessor=dict(
        # moco.yaml PIXEL_MEAN / PIXEL_STD and INPUT.FORMAT "RGB"; mmdet's C4 base: BGR, std 1.
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
        # detectron2's C4 ResNet has size_divisibility 0: batches padded to their largest image.
        pad_size_divisor=1),
    backbone=dict(
        # moco.yaml STRIDE_IN_1X1 False: the stride in the 3x3 conv (pytorch style).
        style='pytorch',
        # Base.yaml FREEZE_AT 0: the stem and every stage trained.
        frozen_stages=-1,
        # Base.yaml NORM "SyncBN", statistics updated while training.
        norm_cfg=norm, norm_eval=False,
        init_cfg=None),  # `unmix finetune` points it at the converted checkpoint
    roi_head=dict(
        shared_head=dict(
            # Base.yaml ROI_HEADS.NAME "Res5ROIHeadsExtraNorm": res5 then one more norm.
            type='ResLayerExtraNorm', style='pytorch', norm_cfg=norm, norm_eval=False,
            init_cfg=None)))  # res5 of the checkpoint, set by `unmix finetune`

# detectron2 pascal_voc.py trains on 'difficult' boxes ("they don't hurt accuracy"); mmdet's
# VOCDataset ignores them. The test set still ignores them (VOC devkit rules, as detectron2).
_train_set = dict(type='UnmixVOCDataset', train_difficult=True, data_root={{_base_.data_root}},
                  filter_cfg=dict(filter_empty_gt=True, min_size=32),
                  pipeline={{_base_.train_pipeline}}, backend_args={{_base_.backend_args}})
train_dataloader = dict(dataset=dict(datasets=[
    dict(_train_set, ann_file='VOC2007/ImageSets/Main/trainval.txt',
         data_prefix=dict(sub_data_root='VOC2007/')),
    dict(_train_set, ann_file='VOC2012/ImageSets/Main/trainval.txt',
         data_prefix=dict(sub_data_root='VOC2012/')),
]))

# 24k.yaml MAX_ITER 24000; evaluated once, at the end (d2 TEST.EVAL_PERIOD 0).
train_cfg = dict(type='IterBasedTrainLoop', max_iters=24000, val_interval=24000)
param_scheduler = [
    # 24k.yaml WARMUP_ITERS 100, linear from d2 WARMUP_FACTOR 1/1000 (defaults.py:509-511).
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=100),
    # 24k.yaml STEPS (18000, 22000), GAMMA 0.1.
    dict(type='MultiStepLR', begin=0, end=24000, by_epoch=False, milestones=[18000, 22000],
         gamma=0.1),
]
# d2 WEIGHT_DECAY_NORM 0.0 (defaults.py:503, solver/build.py): no weight decay on norm layers.
optim_wrapper = dict(optimizer=dict(lr=0.02), paramwise_cfg=dict(norm_decay_mult=0.0))
# Base.yaml IMS_PER_BATCH 16, BASE_LR 0.02; `unmix finetune` rescales it to the real batch.
auto_scale_lr = dict(enable=False, base_batch_size=16)

# Base.yaml TEST.PRECISE_BN.ENABLED, NUM_ITER 200 (d2 defaults.py:552-553): after the last
# iteration, before the last checkpoint and the evaluation (transfer/detection/precise_bn.py).
custom_hooks = [dict(type='PreciseBNHook', num_iters=200)]

# detectron2's PascalVOCDetectionEvaluator on VOC2007: 11-point AP (use_07_metric), AP = mean
# over IoU .50:.05:.95, AP50, AP75 (UnmixVOCMetric gives all three from one pass, and recall).
val_evaluator = [
    dict(type='VOCMetric', metric='mAP', eval_mode='11points'),
    dict(type='VOCMetric', metric='recall'),
]
test_evaluator = val_evaluator

default_hooks = dict(checkpoint=dict(by_epoch=False, interval=2000, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')

# ResLayerExtraNorm, PreciseBNHook and UnmixVOCDataset (train_difficult) are ours.
custom_imports = dict(
    imports=['transfer.detection.heads', 'transfer.detection.precise_bn',
             'transfer.detection.datasets'], allow_failed_imports=False)

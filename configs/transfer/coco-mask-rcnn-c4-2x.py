# MoCo's COCO protocol: facebookresearch/moco detection/configs/coco_R_50_C4_2x_moco.yaml on
# coco_R_50_C4_2x.yaml and Base-RCNN-C4-BN.yaml (initial commit 90e244a2, 2020-03-22; the Un-Mix
# repository's own detection configs are byte-identical copies), with detectron2 v0.1.1's
# defaults for the rest, reproduced on mmdet 3.3: Mask R-CNN R50-C4, COCO train2017 -> val2017,
# 180k iterations at total batch 16 (the "2x" schedule, about 24.6 epochs), COCO box and mask AP.
# Each line below that differs from mmdet 3.3's Mask R-CNN C4 config says which MoCo/detectron2
# setting it follows ("moco.yaml", "2x.yaml", "Base.yaml" for the three files, "d2 defaults.py:N"
# for detectron2). Unchanged because mmdet's C4 Mask R-CNN config already has detectron2's values:
# anchors 32..512 x {0.5, 1, 2} on res4, RPN 12000/2000 proposals (train) and 6000/1000 (test,
# Base.yaml), L1 box losses (SMOOTH_L1_BETA 0), RoIAlign 14x14 aligned with adaptive sampling
# (ROIAlignV2), 512 RoIs at 25% positives, the mask head on res5 features (0 convs, a 256-channel
# deconv, 14x14 masks), 0.05 / 0.5 / 100 and mask threshold 0.5 at test, lr 0.02, momentum 0.9,
# weight decay 1e-4, test shorter side 800 (max 1333).
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50-caffe-c4_1x_coco.py'

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
            init_cfg=None)),  # res5 of the checkpoint, set by `unmix finetune`
    # d2 RPN.BOUNDARY_THRESH -1 (defaults.py:202): anchors crossing the border are trained on;
    # mmdet's Mask R-CNN C4 base has allowed_border=0.
    train_cfg=dict(rpn=dict(allowed_border=-1)))

# 2x.yaml MIN_SIZE_TRAIN (640, 672, ..., 800), one chosen per image ("choice"), MAX_SIZE_TRAIN
# 1333 (d2 defaults.py:53-55), flip 0.5; mmdet's base trains at 1333x800 only.
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomChoiceResize',
         scales=[(1333, 640), (1333, 672), (1333, 704), (1333, 736), (1333, 768), (1333, 800)],
         keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
# detectron2 samples iterations, not epochs (TrainingSampler): an infinite shuffled stream.
train_dataloader = dict(sampler=dict(type='InfiniteSampler', shuffle=True),
                        dataset=dict(pipeline=train_pipeline))

# 2x.yaml MAX_ITER 180000; evaluated once, at the end (d2 TEST.EVAL_PERIOD 0).
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=180000, val_interval=180000)
param_scheduler = [
    # d2 WARMUP_ITERS 1000, linear from WARMUP_FACTOR 1/1000 (defaults.py:509-511); mmdet: 500.
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    # 2x.yaml STEPS (120000, 160000), GAMMA 0.1.
    dict(type='MultiStepLR', begin=0, end=180000, by_epoch=False, milestones=[120000, 160000],
         gamma=0.1),
]
# d2 WEIGHT_DECAY_NORM 0.0 (defaults.py:503, solver/build.py): no weight decay on norm layers.
optim_wrapper = dict(optimizer=dict(lr=0.02), paramwise_cfg=dict(norm_decay_mult=0.0))
# Base.yaml IMS_PER_BATCH 16, BASE_LR 0.02; `unmix finetune` rescales it to the real batch.
auto_scale_lr = dict(enable=False, base_batch_size=16)

# Base.yaml TEST.PRECISE_BN.ENABLED, NUM_ITER 200 (d2 defaults.py:552-553): after the last
# iteration, before the last checkpoint and the evaluation (transfer/detection/precise_bn.py).
custom_hooks = [dict(type='PreciseBNHook', num_iters=200)]

# detectron2's COCOEvaluator (pycocotools, maxDets 100): box and mask AP, AP50, AP75, APs/m/l.
val_evaluator = dict(metric=['bbox', 'segm'], proposal_nums=(1, 10, 100))
test_evaluator = val_evaluator

default_hooks = dict(checkpoint=dict(by_epoch=False, interval=20000, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')

# ResLayerExtraNorm and PreciseBNHook are ours.
custom_imports = dict(imports=['transfer.detection.heads', 'transfer.detection.precise_bn'],
                      allow_failed_imports=False)

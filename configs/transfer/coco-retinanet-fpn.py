# The Un-Mix paper's COCO protocol (arXiv 2003.05438v1, section 4.3, Table 8a): RetinaNet R50-FPN,
# COCO train2017 -> val2017, 12 epochs, 1333x800, initial lr 0.02 at total batch 16, BN frozen by
# default (`unmix finetune` applies the --bn mode), no norm in the FPN neck. The paper ran
# mmdetection 1.x, so this is its configs/retinanet_r50_fpn_1x.py (v1.1.0, 4c21f7ff; "1.x l.N"
# below is its line N) on mmdet 3.3: each line that differs from mmdet 3.3's config says which 1.x
# setting it restores (mmdet 3.3's legacy_1.x RetinaNet config makes the same model changes).
# `coco-retinanet-fpn-mmdet3` keeps mmdet 3.3's recipe. Unchanged because 1.x and 3.3 agree: P6
# from C5 (1.x extra_convs_on_inputs=True = 3.3 'on_input'), focal loss, anchors, assigner, test.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

model = dict(
    # pytorch-style ResNet, RGB, torchvision mean/std (1.x l.4, 11, 58-59), as mmdet 3.3's.
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(style='pytorch', init_cfg=None),
    bbox_head=dict(
        # 1.x anchors are centred at (stride - 1) / 2 (1.x anchor_generator.py:32-34); 3.3: 0.
        anchor_generator=dict(type='LegacyAnchorGenerator', center_offset=0.5),
        # 1.x box deltas use the legacy "+1" width convention; 3.3's coder does not.
        bbox_coder=dict(type='LegacyDeltaXYWHBBoxCoder'),
        # 1.x l.37: SmoothL1Loss(beta=0.11); 3.3: L1Loss.
        loss_bbox=dict(type='SmoothL1Loss', beta=0.11, loss_weight=1.0)))

# The paper: "The initial learning rate is set to 0.02" (1.x l.105 and mmdet 3.3 use 0.01 for
# RetinaNet: the paper's text wins, see docs/transfer.md). 1.x l.106: gradients clipped to 35.
optim_wrapper = dict(optimizer=dict(lr=0.02), clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    # 1.x l.108-113: linear warm-up over 500 iterations from 1/3 of the lr; 3.3: from 0.001.
    dict(type='LinearLR', start_factor=1.0 / 3, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
auto_scale_lr = dict(enable=False, base_batch_size=16)

# proposal_nums=(1, 10, 100): COCO's own maxDets, so AP50/AP75/APs/m/l match the official numbers.
val_evaluator = dict(proposal_nums=(1, 10, 100))
test_evaluator = val_evaluator

vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
default_hooks = dict(checkpoint=dict(max_keep_ckpts=2))

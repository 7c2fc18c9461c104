# Variant `coco-mask-rcnn-fpn-mmselfsup`: Mask R-CNN R50-FPN as mmselfsup 1.x benchmarks it,
# configs/benchmarks/mmdetection/coco/mask-rcnn_r50_fpn_ms-1x_coco.py (v1.0.0 = main db861f30;
# "mmselfsup l.N" below is its line N), so numbers can be put beside mmselfsup's published COCO
# table: COCO train2017 -> val2017, mmdet 3.3's 1x schedule (12 epochs, lr 0.02 at total batch 16,
# warm-up 500 iterations from 0.001, steps at 8 and 11), SyncBN in the backbone, the FPN neck and
# the box and mask heads (not the RPN head), multi-scale training. Everything else is mmdet 3.3's.
# The Un-Mix paper's own Mask R-CNN protocol is `coco-mask-rcnn-fpn` (no norm in neck or heads).
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

norm = dict(type='SyncBN', requires_grad=True)  # mmselfsup l.4
model = dict(
    # pytorch-style ResNet, RGB, torchvision mean/std: mmdet 3.3's FPN base, inherited by mmselfsup.
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    # mmselfsup l.6: every stage trained, SyncBN with statistics updated.
    backbone=dict(style='pytorch', frozen_stages=-1, norm_cfg=norm, norm_eval=False, init_cfg=None),
    # mmselfsup l.7: SyncBN in the FPN (mmdet's has no norm).
    neck=dict(norm_cfg=norm),
    roi_head=dict(
        # mmselfsup l.9: 4 convs + 1 fc box head with SyncBN (mmdet's: 2 fc, no norm).
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', norm_cfg=norm),
        # mmselfsup l.10: SyncBN in the mask head's convs.
        mask_head=dict(norm_cfg=norm)))

# mmselfsup l.12-24: shorter side one of 640..800 (step 32), max 1333, flip 0.5.
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomChoiceResize',
         scales=[(1333, 640), (1333, 672), (1333, 704), (1333, 736), (1333, 768), (1333, 800)],
         keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# lr 0.02 at 8 GPUs x 2 images (mmdet's 1x); `unmix finetune` rescales it to the real batch.
auto_scale_lr = dict(enable=False, base_batch_size=16)

# proposal_nums=(1, 10, 100): COCO's own maxDets. With 100 detections per image at most
# (test_cfg.rcnn.max_per_img), mmselfsup's default (100, 300, 1000) gives the same numbers.
val_evaluator = dict(proposal_nums=(1, 10, 100))
test_evaluator = val_evaluator

vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
default_hooks = dict(checkpoint=dict(max_keep_ckpts=2))

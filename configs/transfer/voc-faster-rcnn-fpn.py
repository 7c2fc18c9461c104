# The Un-Mix paper's VOC protocol (arXiv 2003.05438v1, section 4.3, Table 7): Faster R-CNN R50-FPN,
# VOC07+12 trainval -> VOC2007 test, 12 epochs (4 epochs over a 3x repeated dataset), 1000x600
# train and test, 11-point AP50 and recall. The paper ran mmdetection 1.x (Un-Mix v1 is from
# 2020-03; mmdetection 2.0 came in 2020-05), so this is mmdetection 1.x's recipe,
# configs/pascal_voc/faster_rcnn_r50_fpn_1x_voc0712.py (v1.1.0, 4c21f7ff; the same in v1.0.0 and
# v1.2.0; "1.x l.N" below is its line N), reproduced on mmdet 3.3. Each line that differs from
# mmdet 3.3's config says which 1.x setting it restores; mmdet 3.3's own legacy_1.x configs make
# the same model changes. `voc-faster-rcnn-fpn-mmdet3` keeps mmdet 3.3's recipe.
# Unchanged because 1.x and 3.3 agree: lr 0.01 at total batch 16, SGD momentum 0.9, wd 1e-4,
# step at epoch 3 of 4 (1.x l.156, 159, 170), NO warm-up (1.x's VOC config has none), anchors,
# assigners, samplers, test settings, ResNet norm_eval=True and frozen_stages=1.
# The backbone's init_cfg, depth, norm (the --bn mode) and the learning rate scaled to the actual
# total batch are set by `unmix finetune` (transfer/detection/protocols.py), not here.
_base_ = 'mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py'

model = dict(
    # pytorch-style ResNet, RGB, torchvision mean/std (1.x l.4, 11, 103-104): mmdet 3.3's too,
    # restated because this is the protocol, not an accident of the base file.
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(style='pytorch', init_cfg=None),
    rpn_head=dict(
        # 1.x anchors are centred at (stride - 1) / 2 (1.x anchor_generator.py:32-34); 3.3: 0.
        anchor_generator=dict(type='LegacyAnchorGenerator', center_offset=0.5),
        # 1.x box deltas use the legacy "+1" width convention; 3.3's coder does not.
        bbox_coder=dict(type='LegacyDeltaXYWHBBoxCoder'),
        # 1.x l.28: SmoothL1Loss(beta=1/9); 3.3: L1Loss.
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0)),
    roi_head=dict(
        bbox_roi_extractor=dict(
            # 1.x l.31: RoIAlign(out_size=7, sample_num=2), not aligned; 3.3: sampling 0, aligned.
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=2, aligned=False)),
        bbox_head=dict(
            # The legacy "+1" box deltas, as the RPN's.
            bbox_coder=dict(type='LegacyDeltaXYWHBBoxCoder'),
            # 1.x l.46: SmoothL1Loss(beta=1.0); 3.3: L1Loss.
            loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))),
    train_cfg=dict(
        # 1.x l.62: allowed_border=0, anchors crossing the image border are not trained; 3.3: -1.
        rpn=dict(allowed_border=0),
        # 1.x l.65-71: up to 2000 RPN proposals per training image (max_num); 3.3: 1000.
        rpn_proposal=dict(max_per_img=2000),
        # 1.x's MaxIoUAssigner always adds low-quality matches (max_iou_assigner.py:176-183).
        rcnn=dict(assigner=dict(match_low_quality=True))))

# 1.x trained on every non-difficult box (XMLDataset min_size=None, xml_style.py:14-17); 3.3's
# VOC base ignores training boxes under 32 px (bbox_min_size=32): restated without it.
train_dataloader = dict(dataset=dict(dataset=dict(datasets=[
    dict(type='VOCDataset', data_root={{_base_.data_root}},
         ann_file='VOC2007/ImageSets/Main/trainval.txt', data_prefix=dict(sub_data_root='VOC2007/'),
         filter_cfg=dict(filter_empty_gt=True, min_size=32), pipeline={{_base_.train_pipeline}},
         backend_args={{_base_.backend_args}}),
    dict(type='VOCDataset', data_root={{_base_.data_root}},
         ann_file='VOC2012/ImageSets/Main/trainval.txt', data_prefix=dict(sub_data_root='VOC2012/'),
         filter_cfg=dict(filter_empty_gt=True, min_size=32), pipeline={{_base_.train_pipeline}},
         backend_args={{_base_.backend_args}}),
])))

# 1.x l.157: gradients clipped to L2 norm 35; 3.3's VOC config does not clip.
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
# lr 0.01 at 8 GPUs x 2 images (1.x l.130-131, 156); `unmix finetune` rescales it to the real batch.
auto_scale_lr = dict(enable=False, base_batch_size=16)

# VOC2007 test: 11-point AP50 and recall, the "default VOC metrics" of the paper (1.x l.154,
# mean_ap.py:357 uses 11 points for voc07). mmdet's VOCMetric computes one metric per instance.
val_evaluator = [
    dict(type='VOCMetric', metric='mAP', eval_mode='11points'),
    dict(type='VOCMetric', metric='recall'),
]
test_evaluator = val_evaluator

vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
default_hooks = dict(checkpoint=dict(max_keep_ckpts=2))

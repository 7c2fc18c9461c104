# MoCo's VOC protocol (detectron2 R50-C4, as ported to mmdet by mmselfsup 1.x), for comparison with
# MoCo / DenseCL / mmselfsup numbers: Faster R-CNN R50-C4, VOC07+12 trainval -> VOC2007 test,
# 24k iterations at total batch 16 (lr 0.02, steps at 18k and 22k, 100 warm-up iterations),
# multi-scale training (shorter side 480..800), 800 test, SyncBN everywhere with norm_eval=False,
# no frozen stage, an extra norm after res5 in the box head, and res5 of the checkpoint
# initialising that shared head (`unmix finetune` points its init_cfg at the converted backbone).
_base_ = 'mmdet::pascal_voc/faster-rcnn_r50-caffe-c4_ms-18k_voc0712.py'

# mmdet's C4 base is caffe style with BGR input: switch to pytorch style, RGB, torchvision mean/std.
model = dict(
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(
        style='pytorch', frozen_stages=-1, norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False, init_cfg=None),
    roi_head=dict(
        shared_head=dict(
            type='ResLayerExtraNorm', style='pytorch',
            norm_cfg=dict(type='SyncBN', requires_grad=True), norm_eval=False, init_cfg=None)))

train_cfg = dict(type='IterBasedTrainLoop', max_iters=24000, val_interval=24000)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=24000, by_epoch=False, milestones=[18000, 22000],
         gamma=0.1),
]
optim_wrapper = dict(optimizer=dict(lr=0.02))
auto_scale_lr = dict(enable=False, base_batch_size=16)

# MoCo reports AP (.50:.95), AP50 and AP75 on VOC2007 test (11-point, as VOC07's devkit).
# mmdet's VOCMetric computes one metric per instance: AP50 and recall are two.
val_evaluator = [
    dict(type='VOCMetric', metric='mAP', eval_mode='11points'),
    dict(type='VOCMetric', metric='recall'),
]
test_evaluator = val_evaluator

default_hooks = dict(checkpoint=dict(by_epoch=False, interval=2000, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')

# Registers ResLayerExtraNorm (the extra norm after res5, MoCo's Res5ROIHeadsExtraNorm).
custom_imports = dict(imports=['transfer.detection.heads'], allow_failed_imports=False)

# Variant `voc-faster-rcnn-c4-mmselfsup`: MoCo's VOC protocol as mmselfsup 1.x ported it to mmdet,
# configs/benchmarks/mmdetection/voc0712/faster-rcnn_r50-c4_ms-24k_voc0712.py (v1.0.0 = main
# db861f30; "mmselfsup l.N" below is its line N), for comparison with mmselfsup's published VOC
# AP50: Faster R-CNN R50-C4, VOC07+12 trainval -> VOC2007 test, 24k iterations at total batch 16.
# Everything else is mmdet 3.3's C4 VOC config, as in mmselfsup: lr 0.02 with weight decay 1e-4 on
# every parameter, multi-scale training (shorter side 480..800, max 1333), 800 test, difficult
# boxes not trained on, padding to 32. What MoCo's detectron2 recipe has and this port does not
# (`voc-faster-rcnn-c4` has them): Precise BN, no weight decay on norm layers, training on
# 'difficult' boxes, no padding to 32, and RGB input with torchvision's mean/std (below).
_base_ = 'mmdet::pascal_voc/faster-rcnn_r50-caffe-c4_ms-18k_voc0712.py'

# mmselfsup l.4-9 defines an RGB / torchvision-mean-std `data_preprocessor` at top level but never
# puts it into `model`; mmengine's Runner only `setdefault`s it (runner.py:426-428, the same since
# v0.1.0), so what mmselfsup runs is mmdet's caffe preprocessor: BGR, mean [103.53, 116.28,
# 123.675], std 1. Kept as it runs (inherited), since this variant is there to match its numbers.
model = dict(
    backbone=dict(
        # mmselfsup l.13-18: every stage trained, SyncBN with statistics updated, pytorch style.
        frozen_stages=-1, norm_cfg=dict(type='SyncBN', requires_grad=True), norm_eval=False,
        style='pytorch', init_cfg=None),
    roi_head=dict(
        # mmselfsup l.19-24: res5 + an extra norm (MoCo's Res5ROIHeadsExtraNorm), SyncBN, pytorch.
        shared_head=dict(
            type='ResLayerExtraNorm', style='pytorch',
            norm_cfg=dict(type='SyncBN', requires_grad=True), norm_eval=False, init_cfg=None)))

# mmselfsup l.77: 24k iterations (evaluated every 2000 there; here once, at the end).
train_cfg = dict(type='IterBasedTrainLoop', max_iters=24000, val_interval=24000)
# mmselfsup l.79-89: 100 warm-up iterations from 0.001, steps at 18k and 22k.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=24000, by_epoch=False, milestones=[18000, 22000],
         gamma=0.1),
]
# lr 0.02 at 8 GPUs x 2 images (mmdet's base); `unmix finetune` rescales it to the real batch.
auto_scale_lr = dict(enable=False, base_batch_size=16)

# mmselfsup l.91: VOCMetric 11-point AP50. Ours also gives AP (.50:.95), AP75 and recall.
val_evaluator = [
    dict(type='VOCMetric', metric='mAP', eval_mode='11points'),
    dict(type='VOCMetric', metric='recall'),
]
test_evaluator = val_evaluator

default_hooks = dict(checkpoint=dict(by_epoch=False, interval=2000, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')

# Registers ResLayerExtraNorm (mmselfsup l.98-100 imports its own).
custom_imports = dict(imports=['transfer.detection.heads'], allow_failed_imports=False)

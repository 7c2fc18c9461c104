# The demo's detection run: the `voc-faster-rcnn-fpn-mmdet3` protocol (configs/transfer/; the
# paper's VOC protocol on mmdet 3.3's recipe, the one the demo's numbers were measured with)
# shrunk to the demo's generated scenes (unmix/demo/toydata.py, 64 px, 4 shape classes) on a 2-core CPU: a
# ResNet-18 backbone and 64-channel FPN/RPN/RoI heads (256 in the protocol) at 64 px.
# `unmix demo` passes the difference between this file and the protocol's config as
# cfg-options to `unmix finetune --protocol voc-faster-rcnn-fpn-mmdet3`, so the records name the real
# protocol and list every override. The checkpoint's depth/widths and the BN mode are applied by
# `unmix finetune` (transfer/detection/protocols.py), as for any run.
_base_ = '../transfer/voc-faster-rcnn-fpn-mmdet3.py'

classes = ('disc', 'box', 'triangle', 'diamond')
scale = (64, 64)
channels = 64
epochs = 12

model = dict(
    backbone=dict(depth=18),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=channels),
    # anchors and the RoI level mapping scaled to the objects: VOC's objects are ~4x larger than
    # the scenes' 13-32 px ones. With the protocol's anchor scale 8 (32 px on P2) and finest_scale
    # 56, every object went to P2, built from the frozen stem and layer1, so the pretrained
    # layer2-4 barely mattered and random init matched them (measured: docs/demo.md).
    rpn_head=dict(in_channels=channels, feat_channels=channels, anchor_generator=dict(scales=[2])),
    # the scenes hold 1-3 objects: far fewer proposals and RoIs than VOC needs (CPU time)
    train_cfg=dict(rpn_proposal=dict(nms_pre=300, max_per_img=100), rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100)),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=channels, finest_scale=14),
                  bbox_head=dict(in_channels=channels, fc_out_channels=256, num_classes=len(classes))))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]
_voc = dict(type='VOCDataset', data_root='data/VOCdevkit/', metainfo=dict(classes=classes),
            filter_cfg=dict(filter_empty_gt=True, min_size=8, bbox_min_size=4), pipeline=train_pipeline)
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(times=1, dataset=dict(datasets=[
        dict(_voc, ann_file='VOC2007/ImageSets/Main/trainval.txt', data_prefix=dict(sub_data_root='VOC2007/')),
        dict(_voc, ann_file='VOC2012/ImageSets/Main/trainval.txt', data_prefix=dict(sub_data_root='VOC2012/')),
    ])))
_test = dict(num_workers=0, persistent_workers=False,
             dataset=dict(metainfo=dict(classes=classes), pipeline=test_pipeline))
val_dataloader = _test
test_dataloader = _test

train_cfg = dict(max_epochs=epochs, val_interval=epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=25),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=epochs, milestones=[epochs - 1], gamma=0.1)]
# lr 0.01 at the demo's batch 8: mmdet's 0.02 at 16, scaled linearly by `unmix finetune`. At twice
# that, Freeze BN runs of the pretrained encoders diverged (their features are 6-30x the scale of
# a zero-init-residual random ResNet's). Gradient clipping as mmdet's short schedules use it.
optim_wrapper = dict(optimizer=dict(lr=0.02), clip_grad=dict(max_norm=35, norm_type=2))
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=epochs))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(vis_backends=vis_backends)

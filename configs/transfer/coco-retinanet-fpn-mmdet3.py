# Variant `coco-retinanet-fpn-mmdet3`: the paper's COCO protocol (Un-Mix, arXiv 2003.05438v1,
# section 4.3, Table 8a: RetinaNet R50-FPN, COCO train2017 -> val2017, 12 epochs, 1333x800, initial
# lr 0.02 at total batch 16, BN frozen by default) with mmdet 3.3's recipe as it stands (L1 loss,
# warm-up from 0.001, no gradient clipping); `coco-retinanet-fpn` is the mmdet 1.x recipe.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

model = dict(
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(style='pytorch', init_cfg=None))

# The paper: "The initial learning rate is set to 0.02" (mmdet's RetinaNet default is 0.01).
optim_wrapper = dict(optimizer=dict(lr=0.02))
auto_scale_lr = dict(enable=False, base_batch_size=16)

# proposal_nums=(1, 10, 100): COCO's own maxDets, so AP50/AP75/APs/m/l match the official numbers.
val_evaluator = dict(proposal_nums=(1, 10, 100))
test_evaluator = val_evaluator

vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
default_hooks = dict(checkpoint=dict(max_keep_ckpts=2))

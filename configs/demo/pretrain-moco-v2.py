# The demo's pretraining: MoCo v2 (configs/pretrain/moco_v2_cifar10.py's recipe: ResNet-18,
# SplitBatchNorm as shuffle-BN, symmetric loss, m 0.99, T 0.1, SGD + cosine) on 32 px crops of
# the generated scenes' objects, an image folder written by `unmix demo`. The ImageNet stem, not
# the CIFAR one, because the encoder becomes a detection backbone. `unmix demo` sets data.root,
# train.seed and, for `--size tiny`, the sizes below through --cfg-options.
_base_ = '../pretrain/moco_v2_cifar10.py'

# The crops come from a pool of 1000 scenes (~2000 objects) that the detector never sees, ~20x the
# objects of its 50 labelled scenes: pretraining's point is data without labels. 6 epochs
# (~380 iterations of 32). K 256 < the crops, so a query never meets its own earlier key among the
# negatives. Crop scale (0.2, 1) as MoCo v2's recipe (the device default 0.08 zooms 3.5x into 32 px).
model = dict(stem='imagenet', K=256, split_bn=4)
data = dict(name='folder', root=None, size=32, num_workers=0, device_augment=True,
            device_augment_kwargs=dict(scale=(0.2, 1.0)))
optimizer = dict(lr=0.06, weight_decay=5e-4)
schedule = dict(policy='cosine', epochs=6, warmup_epochs=1)
train = dict(batch_size=32, checkpoint_interval=1000, log_interval=5, tensorboard=False)
knn = dict(interval=0)

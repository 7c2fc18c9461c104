_base_ = ['./_base_/default_runtime.py', './_base_/datasets/cifar100.py',
          './_base_/schedules/sgd_step.py', './_base_/methods/simclr.py']
# SimCLR on CIFAR as htdt/self-supervised runs it (the base the Un-Mix authors credit for their
# SimCLR/BYOL experiments, szq0214/Un-Mix README.md:192; their own SimCLR/BYOL code is unreleased).
# Files of htdt/self-supervised: cfg.py, train.py, model.py, methods/contrastive.py,
# datasets/transforms.py, datasets/cifar100.py. Checked by tests/test_recipes.py.
# Command: README.md:56 `--dataset cifar100 --epoch 1000 --lr 3e-3 --emb 64 --method contrastive`.
# ResNet-18, 3x3 stride-1 conv1, no max-pool (model.py:19-29); head Linear 512 -> 1024, BN, ReLU ->
# 64 (cfg.py:51, 77-81, 110; model.py:5-16) on both views at once, then BatchNorm1d(64)
# (contrastive.py:32, 37-38); NT-Xent tau 0.5 on L2-normalised embeddings (cfg.py:93-98, contrastive.py:8-23).
model = dict(arch='resnet18', stem='cifar', dim=64, hidden_dim=1024, T=0.5, out_bn=True, joint_head=True)
# Adam lr 3e-3 (README.md:56; train.py:39), L2 weight decay 1e-6 on every parameter (cfg.py:66-68),
# no lr scaling with the batch.
optimizer = dict(_delete_=True, type='adam', lr=3e-3, weight_decay=1e-6)
# 500 warm-up iterations (train.py:43-54), then x0.2 at epochs 950 and 975 = epoch - (50, 25)
# (cfg.py:56-60, 114-126; train.py:22-24).
schedule = dict(_delete_=True, policy='step', epochs=1000, warmup_iters=500, warmup_start=0.0,
                milestones=[950, 975], gamma=0.2)
train = dict(batch_size=512)  # cfg.py:111-113
# Colour jitter (.4,.4,.4,.1) p .8, grayscale .1, then a bicubic RandomResizedCrop(32, 0.2-1) and
# flip (cfg.py:32-42, transforms.py:4-22); its own mean/std (datasets/cifar100.py:7-10).
data = dict(views='htdt', view_kwargs=dict(crop_scale=(0.2, 1.0), jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=0.8,
                                           gray_p=0.1, mean_std=((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))))

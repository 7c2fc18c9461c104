_base_ = ['./_base_/default_runtime.py', './_base_/datasets/cifar100.py',
          './_base_/schedules/sgd_step.py', './_base_/methods/byol.py']
# BYOL on CIFAR as htdt/self-supervised runs it (the base the Un-Mix authors credit,
# szq0214/Un-Mix README.md:192). Files of htdt/self-supervised: cfg.py, train.py, model.py,
# methods/byol.py, methods/norm_mse.py, datasets/transforms.py, datasets/cifar100.py. Checked by tests/test_recipes.py.
# Command: README.md:64 `--dataset cifar100 --epoch 1000 --lr 3e-3 --emb 64 --method byol`.
# ResNet-18 CIFAR stem (model.py:19-29); projector 512 -> 1024 (BN, ReLU) -> 64 (model.py:5-16,
# cfg.py:77-81, 110), predictor 64 -> 1024 (BN, ReLU) -> 64 (byol.py:17-22); loss 2 - 2cos, symmetric
# (byol.py:38-48, norm_mse.py); target momentum 0.99 -> 1 on a cosine (cfg.py:21-23, byol.py:50-53).
model = dict(arch='resnet18', stem='cifar', dim=64, hidden_dim=1024, tau=0.99)
optimizer = dict(_delete_=True, type='adam', lr=3e-3, weight_decay=1e-6)  # README.md:64, train.py:39, cfg.py:66-68
# 500 warm-up iterations (train.py:43-54), x0.2 at epochs 950 and 975 (cfg.py:56-60, 114-126; train.py:22-24).
schedule = dict(_delete_=True, policy='step', epochs=1000, warmup_iters=500, warmup_start=0.0,
                milestones=[950, 975], gamma=0.2)
train = dict(batch_size=512)  # cfg.py:111-113
# Same views for both branches (cfg.py:32-42, transforms.py:4-22); its own mean/std (datasets/cifar100.py:7-10).
data = dict(views='htdt', view_kwargs=dict(crop_scale=(0.2, 1.0), jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=0.8,
                                           gray_p=0.1, mean_std=((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))))

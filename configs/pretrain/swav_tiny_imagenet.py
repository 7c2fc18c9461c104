_base_ = ['./_base_/default_runtime.py', './_base_/datasets/tiny_imagenet.py',
          './_base_/schedules/lars_cosine.py', './_base_/methods/swav.py']
optimizer = dict(_delete_=True, type='larc', lr=0.6, momentum=0.9, weight_decay=1e-6, eta=0.001, exclude_bias_and_norm=False)
# SwAV CIFAR (Un-Mix repo): head 512 -> 128, 100 prototypes, batch 128, LARC lr 0.6 -> 0.0006,
# 5 warm-up epochs, wd 1e-6, eps 0.05, T 0.1, 3 Sinkhorn iterations, 2 x 32 crops (scale 0.14-1),
# 1000 epochs. The repo's backbone is a bottleneck ResNet [2,2,2,2]; ResNet-18 here.
model = dict(arch='resnet18', stem='cifar', hidden_dim=512, dim=128, n_prototypes=100)
schedule = dict(policy='cosine', epochs=1000, warmup_epochs=5, warmup_start=0.0, min_lr=0.0006)
train = dict(batch_size=128)
data = dict(views='swav')

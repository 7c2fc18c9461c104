_base_ = ['./_base_/default_runtime.py', './_base_/datasets/cifar10.py',
          './_base_/schedules/lars_cosine.py', './_base_/methods/simclr.py']
# SimCLR's CIFAR setting: ResNet-18 CIFAR stem, T 0.5, LARS lr 0.5 x batch/256, wd 1e-6,
# 10 warm-up epochs, cosine, 1000 epochs (no blur below 96 px).
model = dict(arch='resnet18', stem='cifar', hidden_dim=2048, T=0.5)
optimizer = dict(lr=0.5, base_batch_size=256, weight_decay=1e-6)
schedule = dict(epochs=1000, warmup_epochs=10)
train = dict(batch_size=512)
data = dict(views='simclr')

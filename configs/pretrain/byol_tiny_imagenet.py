_base_ = ['./_base_/default_runtime.py', './_base_/datasets/tiny_imagenet.py',
          './_base_/schedules/lars_cosine.py', './_base_/methods/byol.py']
# BYOL on small images: ResNet-18, projector/predictor 4096 -> 256, tau 0.996 -> 1, LARS lr 1.0 x batch/256
# (the common CIFAR re-implementation setting), wd 1.5e-6, 10 warm-up epochs, 1000 epochs.
model = dict(arch='resnet18', stem='cifar')
optimizer = dict(lr=1.0, base_batch_size=256, weight_decay=1.5e-6)
schedule = dict(epochs=1000, warmup_epochs=10)
train = dict(batch_size=512)
data = dict(views='byol')

_base_ = ['./_base_/default_runtime.py', './_base_/datasets/imagenet.py',
          './_base_/schedules/sgd_cosine.py', './_base_/methods/moco_v2.py']
# MoCo on ImageNet-1K: ResNet-50, SGD lr 0.03, batch 256, wd 1e-4, 200 epochs, cosine.
train = dict(batch_size=256)
data = dict(views='moco_v2')

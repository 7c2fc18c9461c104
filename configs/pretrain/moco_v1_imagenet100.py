_base_ = ['./_base_/default_runtime.py', './_base_/datasets/imagenet100.py',
          './_base_/schedules/sgd_step.py', './_base_/methods/moco_v1.py']
# ImageNet-100 as in Un-Mix: Rethinking Image Mixtures for Unsupervised Visual Representation Learning, arXiv 2003.05438v1
# (section 4.1): batch 128, m 0.99, K 16384; other settings as ImageNet.
model = dict(K=16384, m=0.99)
train = dict(batch_size=128)
schedule = dict(epochs=200)
data = dict(views='moco_v1')

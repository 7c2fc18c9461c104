_base_ = ['./_base_/default_runtime.py', './_base_/datasets/cifar10.py',
          './_base_/schedules/sgd_cosine.py', './_base_/methods/moco_v2.py']
# The Un-Mix MoCo CIFAR demo: ResNet-18, SplitBatchNorm 8, K 4096, m 0.99, T 0.1, symmetric loss,
# SGD lr 0.06 (batch 512), wd 5e-4, cosine, 1000 epochs, kNN monitor (k 200, t 0.1).
model = dict(arch='resnet18', stem='cifar', K=4096, m=0.99, T=0.1, symmetric=True, split_bn=8)
optimizer = dict(lr=0.06, weight_decay=5e-4)
schedule = dict(policy='cosine', epochs=1000)
train = dict(batch_size=512)
data = dict(views='moco_v2')
# The official monitor (unmix_c10.py:446 `test(model.encoder_q, ...)`): weighted kNN on the
# L2-normalised 128-d head output, the quantity of the published MoCo CIFAR numbers.
knn = dict(features='head')

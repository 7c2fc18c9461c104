_base_ = './byol_cifar10.py'
model = dict(unmix=dict(enabled=True, beta=1.0, prob=0.5))

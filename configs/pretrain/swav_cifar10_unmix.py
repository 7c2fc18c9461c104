_base_ = './swav_cifar10.py'
# Un-Mix: prob 0.5 of a global mixture, else region (M:132, not passed by S), beta 1.0 (M:134).
model = dict(unmix=dict(enabled=True, beta=1.0, prob=0.5))

# MoCo v1 (He et al. 2020): linear projector, T 0.07, K 65536, m 0.999, asymmetric loss.
model = dict(type='moco', version='v1', arch='resnet50', stem='imagenet', dim=128, K=65536, m=0.999, T=0.07,
             symmetric=False, split_bn=0, unmix=dict(enabled=False, beta=1.0, prob=0.5))

# MoCo v2 (Chen et al. 2020): MLP projector, T 0.2, blur augmentation, cosine schedule.
model = dict(type='moco', version='v2', arch='resnet50', stem='imagenet', dim=128, K=65536, m=0.999, T=0.2,
             symmetric=False, split_bn=0, unmix=dict(enabled=False, beta=1.0, prob=0.5))

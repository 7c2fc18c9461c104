# SimCLR (Chen et al. 2020): 2-layer MLP projector with BN, NT-Xent.
model = dict(type='simclr', arch='resnet50', stem='imagenet', dim=128, T=0.1,
             unmix=dict(enabled=False, beta=1.0, prob=0.5))

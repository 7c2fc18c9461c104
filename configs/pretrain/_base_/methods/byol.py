# BYOL (Grill et al. 2020): projector/predictor 4096 -> 256, tau 0.996 -> 1 (cosine), asymmetric views.
model = dict(type='byol', arch='resnet50', stem='imagenet', dim=256, hidden_dim=4096, tau=0.996,
             unmix=dict(enabled=False, beta=1.0, prob=0.5))

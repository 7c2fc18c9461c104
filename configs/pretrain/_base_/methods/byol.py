# BYOL (Grill et al. 2020): projector/predictor 4096 -> 256, tau 0.996 -> 1 (cosine), asymmetric views.
# Un-Mix: the mixture goes through both branches, as the authors' README pseudo-code
# `loss_m1 = model([x[1], mixed_images])` with BYOL's symmetric loss (szq0214/Un-Mix README.md:86-94).
model = dict(type='byol', arch='resnet50', stem='imagenet', dim=256, hidden_dim=4096, tau=0.996,
             mix_branch='both', unmix=dict(enabled=False, beta=1.0, prob=0.5))

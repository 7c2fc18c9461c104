# SwAV (Caron et al. 2020): 3000 prototypes, eps 0.05, T 0.1, 3 Sinkhorn iterations, multi-crop,
# optimiser: apex LARC(clip=False) on every tensor (type larc), lr 0.6 -> 0.0006 (set in each config).
# queue_length is the total over processes, as szq0214/Un-Mix UnMix_SwAV/for_ImageNet/main_swav_unmix.py
# (M) does: rounded down to a multiple of batch x processes (M:225), each process keeping 1/W of it (M:241).
# With unmix enabled the loss is M's (M:354-423): clean SwAV + lam * SwAV on [mix(x0), x1, ...] + (1 - lam) *
# the same with crop 0's codes reversed; see docs/methods.md.
model = dict(type='swav', arch='resnet50', stem='imagenet', dim=128, hidden_dim=2048, n_prototypes=3000,
             T=0.1, eps=0.05, sinkhorn_iters=3, crops_for_assign=[0, 1], queue_length=0,
             queue_start_epoch=15, freeze_prototypes_epochs=1, unmix=dict(enabled=False, beta=1.0, prob=0.5))

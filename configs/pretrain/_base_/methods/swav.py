# SwAV (Caron et al. 2020): 3000 prototypes, eps 0.05, T 0.1, 3 Sinkhorn iterations, multi-crop,
# optimiser: apex LARC(clip=False) on every tensor (type larc), lr 0.6 -> 0.0006 (set in each config).
model = dict(type='swav', arch='resnet50', stem='imagenet', dim=128, hidden_dim=2048, n_prototypes=3000,
             T=0.1, eps=0.05, sinkhorn_iters=3, crops_for_assign=[0, 1], queue_length=0,
             queue_start_epoch=15, freeze_prototypes_epochs=1, unmix=dict(enabled=False, beta=1.0, prob=0.5))

# MoCo v1 ImageNet: lr x0.1 at epochs 120 and 160 of 200. MoCo sets the lr once per epoch, at its
# start (szq0214/Un-Mix unmix_c10.py:324, 358-367; UnMix_MoCo/for_ImageNet/main_moco_unmix.py:274, 425);
# the CIFAR demos switch this base to a cosine, still per epoch.
optimizer = dict(type='sgd', lr=0.03, momentum=0.9, weight_decay=1e-4)
schedule = dict(policy='step', epochs=200, milestones=[120, 160], gamma=0.1, warmup_epochs=0, per_epoch=True)

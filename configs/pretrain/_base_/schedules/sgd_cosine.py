optimizer = dict(type='sgd', lr=0.03, momentum=0.9, weight_decay=1e-4)
# MoCo sets the lr once per epoch, at its start (szq0214/Un-Mix unmix_c10.py:324, 358-367;
# UnMix_MoCo/for_ImageNet/main_moco_unmix.py:274, 425).
schedule = dict(policy='cosine', epochs=200, warmup_epochs=0, min_lr=0.0, per_epoch=True)

# MoCo v1 ImageNet: lr x0.1 at epochs 120 and 160 of 200.
optimizer = dict(type='sgd', lr=0.03, momentum=0.9, weight_decay=1e-4)
schedule = dict(policy='step', epochs=200, milestones=[120, 160], gamma=0.1, warmup_epochs=0)

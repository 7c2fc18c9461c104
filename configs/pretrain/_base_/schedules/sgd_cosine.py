optimizer = dict(type='sgd', lr=0.03, momentum=0.9, weight_decay=1e-4)
schedule = dict(policy='cosine', epochs=200, warmup_epochs=0, min_lr=0.0)

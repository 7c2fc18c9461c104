# SimCLR / BYOL: LARS, lr = lr * batch_size / base_batch_size, 10 warm-up epochs, cosine;
# biases and BN are excluded from weight decay and adaptation.
optimizer = dict(type='lars', lr=0.3, base_batch_size=256, momentum=0.9, weight_decay=1e-6, eta=0.001,
                 exclude_bias_and_norm=True)
schedule = dict(policy='cosine', epochs=200, warmup_epochs=10, min_lr=0.0)

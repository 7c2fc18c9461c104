_base_ = ['./_base_/default_runtime.py', './_base_/datasets/imagenet100.py',
          './_base_/schedules/lars_cosine.py', './_base_/methods/byol.py']
# BYOL ImageNet: LARS lr 0.2 x batch/256, wd 1.5e-6, batch 4096, 10 warm-up epochs, cosine, 300 epochs.
optimizer = dict(lr=0.2, base_batch_size=256, weight_decay=1.5e-6)
schedule = dict(epochs=300, warmup_epochs=10)
train = dict(batch_size=1024, sync_bn=True)  # 4096 in the paper
data = dict(views='byol')

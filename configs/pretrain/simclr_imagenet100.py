_base_ = ['./_base_/default_runtime.py', './_base_/datasets/imagenet100.py',
          './_base_/schedules/lars_cosine.py', './_base_/methods/simclr.py']
# SimCLR ImageNet: LARS lr 0.3 x batch/256, wd 1e-6, batch 4096, T 0.1, 10 warm-up epochs, cosine.
optimizer = dict(lr=0.3, base_batch_size=256, weight_decay=1e-6)
schedule = dict(epochs=200, warmup_epochs=10)
train = dict(batch_size=1024, sync_bn=True)  # 4096 in the paper; 1024 fits 8 GPUs
data = dict(views='simclr')

_base_ = ['./_base_/default_runtime.py', './_base_/datasets/imagenet.py',
          './_base_/schedules/lars_cosine.py', './_base_/methods/swav.py']
optimizer = dict(_delete_=True, type='larc', lr=0.6, momentum=0.9, weight_decay=1e-6, eta=0.001, exclude_bias_and_norm=False)
# SwAV ImageNet, 200 epochs, batch 256, as szq0214/Un-Mix
# UnMix_SwAV/for_ImageNet/scripts/unmix_swav_200ep_bs256_pretrain.sh:28-46 (4 GPUs x 64): 2 x 224 + 6 x 96
# crops, queue 3840 (the total: 960 rows per process at 4 x 64) from epoch 15, prototypes frozen for
# 5005 iterations, LARC lr 0.6 -> 0.0006, no warm-up, wd 1e-6.
model = dict(queue_length=3840, queue_start_epoch=15, freeze_prototypes_iters=5005)
schedule = dict(policy='cosine', epochs=200, warmup_epochs=0, min_lr=0.0006)
train = dict(batch_size=256)
data = dict(views='swav')

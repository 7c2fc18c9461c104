_base_ = ['./_base_/default_runtime.py', './_base_/datasets/cifar10.py',
          './_base_/schedules/lars_cosine.py', './_base_/methods/swav.py']
# SwAV on CIFAR as the Un-Mix release runs it: szq0214/Un-Mix UnMix_SwAV/for_CIFAR, where
# S = script_unmix_c10.sh, M = main_swav_unmix.py, D = src/multicropdataset.py, R = src/resnet50.py,
# E = eval_linear.py. Checked by tests/test_recipes.py.
# apex LARC(SGD momentum 0.9, wd 1e-6; trust 0.001, clip False) on every tensor: M:90, M:186-192; lr 0.6: S:26.
optimizer = dict(_delete_=True, type='larc', lr=0.6, momentum=0.9, weight_decay=1e-6, eta=0.001,
                 exclude_bias_and_norm=False)
# Backbone: what R calls resnet18 is Bottleneck [2,2,2,2] (2048-d), R:340-341; S:14; input padded by
# 1 then a 3x3 stride-1 conv1 padded by 1 (stem padding 2), no max-pool: R:158, 176-181, 279-284.
# Head 2048 -> 512 (BN, ReLU) -> 128, L2-normalised: S:15, M:70, R:206-211, M:166; 100 prototypes: S:31;
# T 0.1, eps 0.05: S:67-68; 3 Sinkhorn iterations, codes of crops 0 and 1: M:60, M:68.
# Queue: S:32 passes 120, which M:229 rounds down to a multiple of batch x GPUs (128 x 1): 0, no queue
# (pretrain.methods.swav.queue_rows rounds the same way).
# Prototypes frozen for the first 5005 iterations: S:35, M:445-448.
model = dict(arch='resnet18_bottleneck', stem='cifar', stem_padding=2, hidden_dim=512, dim=128,
             n_prototypes=100, T=0.1, eps=0.05, sinkhorn_iters=3, crops_for_assign=[0, 1],
             queue_length=120, freeze_prototypes_iters=5005)
# Per-iteration schedule: linear warm-up from 0 over 5 epochs, then cosine to 0.0006: S:27-28, M:92-93,
# M:193-197. Epochs: S:24 ships 400; the README's result tables run 200-1000 with the same script and
# its headline numbers (C10 93.0, C100 69.9) are the 1000-epoch rows (UnMix_SwAV/for_CIFAR/README.md:44-45, 64-65).
schedule = dict(policy='cosine', epochs=1000, warmup_epochs=5, warmup_start=0.0, min_lr=0.0006)
# Batch 128 on one GPU: S:25, S:2-3. S:34 trains in apex fp16 (O1); we keep fp32 (train.amp='fp16' to match).
train = dict(batch_size=128)
# 2 x 32 px crops, scale 0.14-1 (S:20-21, S:29-30), flip, colour distortion s=0.5 = jitter
# (.4,.4,.4,.1) p .8 + grayscale .2, no blur (D:46, D:51-61, D:108-114); CIFAR mean/std (D:47-48).
data = dict(views='swav', view_kwargs=dict(nmb_crops=[2], size_crops=[32], min_scale_crops=[0.14],
                                           max_scale_crops=[1.0], strength=0.5))
# The published CIFAR numbers are a linear probe (S:71-83, E): `unmix linear --protocol swav-cifar`.
evaluation = dict(linear_protocol='swav-cifar')

_base_ = './moco_v2_imagenet.py'
# Un-Mix on MoCo v2 as szq0214/Un-Mix UnMix_MoCo/for_ImageNet/run.sh:2 runs it: --unmix_prob 0.5
# (the code default became 0.0 in commit 0911f77, main_moco_unmix.py:109), beta 1.0.
model = dict(unmix=dict(enabled=True, beta=1.0, prob=0.5))

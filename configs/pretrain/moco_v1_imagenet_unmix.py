_base_ = './moco_v1_imagenet.py'
# Un-Mix on MoCo v1: the release has no v1 script, so the code default applies: region mixtures
# only, --unmix_prob 0.0 since commit 0911f77 (szq0214/Un-Mix UnMix_MoCo/for_ImageNet/main_moco_unmix.py:109).
model = dict(unmix=dict(enabled=True, beta=1.0, prob=0.0))

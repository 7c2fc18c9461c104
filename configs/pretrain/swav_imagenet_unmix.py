_base_ = './swav_imagenet.py'
# Un-Mix region mixtures only: the ImageNet scripts pass no --unmix_prob and the code default is 0.0
# since commit 0911f77 (szq0214/Un-Mix UnMix_SwAV/for_ImageNet/main_swav_unmix.py:129); beta 1.0 (:131).
model = dict(unmix=dict(enabled=True, beta=1.0, prob=0.0))

_base_ = './moco_v2_imagenet.py'
model = dict(unmix=dict(enabled=True, beta=1.0, prob=0.5))

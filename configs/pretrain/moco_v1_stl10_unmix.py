_base_ = './moco_v1_stl10.py'
model = dict(unmix=dict(enabled=True, beta=1.0, prob=0.5))

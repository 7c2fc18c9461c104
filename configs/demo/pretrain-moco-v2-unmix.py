# pretrain-moco-v2.py with Un-Mix (final form, beta 1.0, mixture branch with probability 0.5):
# the only difference between the demo's two encoders.
_base_ = './pretrain-moco-v2.py'
model = dict(unmix=dict(enabled=True, beta=1.0, prob=0.5))

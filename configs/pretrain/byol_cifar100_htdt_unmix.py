_base_ = './byol_cifar100_htdt.py'
# Un-Mix as the authors' README pseudo-code (szq0214/Un-Mix README.md:66-94): beta 1.0, P 0.5; the
# mixture goes through both branches (mix_branch 'both', from _base_/methods/byol.py).
model = dict(unmix=dict(enabled=True, beta=1.0, prob=0.5))

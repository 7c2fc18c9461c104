# byol_cifar10_htdt.py on CIFAR-100: htdt/self-supervised's only differences are the dataset and its
# mean/std (datasets/cifar100.py:7-10). Command: README.md:64 `--dataset cifar100 --epoch 1000
# --lr 3e-3 --emb 64 --method byol`. Checked by tests/test_recipes.py.
_base_ = './byol_cifar10_htdt.py'
data = dict(name='cifar100', root='data/cifar100',
            view_kwargs=dict(mean_std=((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))))

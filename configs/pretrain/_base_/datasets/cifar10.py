data = dict(name='cifar10', root='data/cifar10', split='train', num_workers=4,
            first_form=dict(enabled=False))
# Weighted kNN monitor of the MoCo CIFAR demo: k 200, t 0.1, bank = train, queries = test;
# features 'backbone' (pooled) or 'head' (normalised projector output: the MoCo CIFAR recipes).
knn = dict(interval=10, k=200, t=0.1, split='test', bank_split='train', features='backbone')

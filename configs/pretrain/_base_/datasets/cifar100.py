data = dict(name='cifar100', root='data/cifar100', split='train', num_workers=4,
            first_form=dict(enabled=False))
knn = dict(interval=10, k=200, t=0.1, split='test', bank_split='train', features='backbone')

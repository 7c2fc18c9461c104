data = dict(name='imagenet', root='data/imagenet', split='train', num_workers=16,
            first_form=dict(enabled=False))
knn = dict(interval=0, k=200, t=0.1, split='val', bank_split='train', max_samples=None, features='backbone')

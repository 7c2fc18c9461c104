data = dict(name='tiny-imagenet', root='data/tiny-imagenet-200', split='train', num_workers=8,
            first_form=dict(enabled=False))
knn = dict(interval=10, k=200, t=0.1, split='val', bank_split='train', features='backbone')

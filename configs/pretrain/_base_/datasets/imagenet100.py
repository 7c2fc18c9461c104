# ImageNet folder restricted to the 100 CMC classes of seed 002, Appendix A.
data = dict(name='imagenet100', root='data/imagenet', split='train', num_workers=16,
            first_form=dict(enabled=False))
knn = dict(interval=0, k=200, t=0.1, split='val', bank_split='train', features='backbone')

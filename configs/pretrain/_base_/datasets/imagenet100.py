# ImageNet folder restricted to the 100 CMC classes of Appendix A of
# Un-Mix: Rethinking Image Mixtures for Unsupervised Visual Representation Learning, arXiv 2003.05438v1.
data = dict(name='imagenet100', root='data/imagenet', split='train', num_workers=16,
            first_form=dict(enabled=False))
knn = dict(interval=0, k=200, t=0.1, split='val', bank_split='train', features='backbone')

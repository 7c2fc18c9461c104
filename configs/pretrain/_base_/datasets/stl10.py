# Pretrain on train+unlabeled (105k images); the kNN bank is the labelled train split.
data = dict(name='stl10', root='data/stl10', split='train+unlabeled', num_workers=8,
            first_form=dict(enabled=False))
knn = dict(interval=10, k=200, t=0.1, split='test', bank_split='train', features='backbone')

_base_ = './moco_v1_imagenet100.py'
# Seed 002's first form at its best ablation settings: global then region mixture ('IM'),
# 4 global rounds (prob 0.5: MoCo tolerates >= 0.5), 5 region rounds (prob 0.1), pixel decay 0.2.
data = dict(first_form=dict(enabled=True, im_type='IM', g_alpha=1.0, g_num=4, g_prob=0.5,
                            r_beta=1.0, r_num=5, r_prob=0.1, r_pixel_decay=0.2))

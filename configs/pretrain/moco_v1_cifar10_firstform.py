_base_ = './moco_v1_cifar10.py'
# The first form with the release's flag defaults (seed 001): IM, g_num 2, g_prob 0.1, r_num 2, r_prob 0.1.
data = dict(first_form=dict(enabled=True, im_type='IM', g_alpha=1.0, g_num=2, g_prob=0.1,
                            r_beta=1.0, r_num=2, r_prob=0.1, r_pixel_decay=1.0))

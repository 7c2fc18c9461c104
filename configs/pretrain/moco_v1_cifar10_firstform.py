_base_ = './moco_v1_cifar10.py'
# The first form of Un-Mix: Rethinking Image Mixtures for Unsupervised Visual Representation Learning, arXiv 2003.05438v1,
# with its code release's flag defaults (szq0214/CMC_with_Image_Mixture train_moco_ins.py:76-87):
# IM, g_num 2, g_prob 0.1, r_num 2, r_prob 0.1, no pixel decay.
data = dict(first_form=dict(enabled=True, im_type='IM', g_alpha=1.0, g_num=2, g_prob=0.1,
                            r_beta=1.0, r_num=2, r_prob=0.1, r_pixel_decay=1.0))

_base_ = './moco_v1_imagenet100.py'
# The first form of Un-Mix: Rethinking Image Mixtures for Unsupervised Visual Representation
# Learning, arXiv 2003.05438v1 (the paper), on ImageNet-100 with MoCo, as its code release runs it
# (F = szq0214/CMC_with_Image_Mixture train_moco_ins.py). Checked by tests/test_recipes.py.
# Mixtures at the paper's best ablation settings: global then region ('IM', F:227-229), 4 global
# rounds (Table 1), 5 region rounds (Table 2), context pixel decay 0.2 (Table 3); region prob 0.1
# (the release's default, F:85; Table 4 fixes it at 0.1). The global prob is not given as a number:
# the paper says MoCo "can use relatively large probability of global mixture" (section 4.2,
# Summary and Best-Practices); 0.5 is our reading, F:82's default is 0.1.
# Budget: 400 epochs, the paper's ablation budget (Tables 1-3); _240ep / _800ep for the others.
# Baseline at the same budget: --cfg-options data.first_form.enabled=False.
# MoCo (from moco_v1_imagenet100.py): batch 128 (F:51), K 16384, T 0.07, softmax CE (F:116-119; README.md:151-152),
# linear 128-d head; key momentum 0.99 as the paper states (section 4.1) -- F:124's default is 0.999
# and its README command passes no --alpha.
data = dict(first_form=dict(enabled=True, im_type='IM', g_alpha=1.0, g_num=4, g_prob=0.5,
                            r_beta=1.0, r_num=5, r_prob=0.1, r_pixel_decay=0.2),
            # the fork's minimum crop 0.1 (F:65, was 0.2 in HobbitLong/CMC train_moco_ins.py:63)
            view_kwargs=dict(crop_scale=(0.1, 1.0)))
# lr 0.03, x0.1 at each decay point (F:56-58, util.py:7-13), SGD momentum 0.9, wd 1e-4 (F:61-62, 283-286).
# The fork's decay points are 360/480/540 of its 600-epoch default (F:53, F:57), i.e. at 60/80/90% of
# the budget; the paper's budgets get the same fractions (our inference: no source gives points for them).
schedule = dict(policy='step', epochs=400, milestones=[240, 320, 360], gamma=0.1)

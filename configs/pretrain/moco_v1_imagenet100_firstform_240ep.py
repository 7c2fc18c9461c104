_base_ = './moco_v1_imagenet100_firstform.py'
# The paper's 240-epoch budget (arXiv 2003.05438v1 Table 5, Figure 4), the fork's decay fractions
# 60/80/90% (szq0214/CMC_with_Image_Mixture train_moco_ins.py:53,57). HobbitLong/CMC, whose
# 240-epoch MoCo run is the 73.4 baseline of Table 5, decays at 120/160/200 instead
# (train_moco_ins.py:51,55 there): --cfg-options "schedule.milestones=[120,160,200]".
schedule = dict(epochs=240, milestones=[144, 192, 216])

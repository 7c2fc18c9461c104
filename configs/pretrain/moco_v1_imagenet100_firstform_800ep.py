_base_ = './moco_v1_imagenet100_firstform.py'
# The paper's 800-epoch budget ("+More Budget", arXiv 2003.05438v1 Table 5), the fork's decay
# fractions 60/80/90% (szq0214/CMC_with_Image_Mixture train_moco_ins.py:53,57).
schedule = dict(epochs=800, milestones=[480, 640, 720])

"""Detection/segmentation transfer: checkpoint conversion, mmdet fine-tuning, evaluation, reports."""

"""Un-Mix pretraining: image mixtures on MoCo v1/v2, SimCLR, BYOL and SwAV; kNN and linear evaluation."""

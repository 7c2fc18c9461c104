"""`unmix demo`: the whole pipeline, small, on data the project draws itself (`toydata`: shape
scenes in the real VOC/COCO on-disk formats), through the real commands (`pipeline`).

Part of the app layer: may import everything below it (`unmix.core`, `pretrain`, `transfer`).
"""

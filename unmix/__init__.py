"""unmix: transfer evaluation for self-supervised encoders (glue shared by `pretrain` and `transfer`)."""

__version__ = "0.1.0"

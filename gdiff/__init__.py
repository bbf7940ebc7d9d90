"""gdiff: fast-sampling diffusion GANs (DDGAN, SIDDM) in PyTorch."""

__version__ = "0.1.0"

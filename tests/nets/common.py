"""Helpers shared by the network tests."""

import torch


def wake(model: torch.nn.Module) -> torch.nn.Module:
    """Give the zero-initialised layers random weights, as after some training (else outputs are 0)."""
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_(0.0, 0.2)
    return model

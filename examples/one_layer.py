import torch.nn as nn


class OneLayer(nn.Module):
    """The one-layer shape question: 1x3x32x32 -> conv (padding 1) -> pool -> [1, 8, 16, 16]."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x):
        return self.pool(self.conv(x))

import torch
import torch.nn as nn


def double_conv(c_in, c_out):
    """Two 3x3 convolutions that keep the map's size (padding=1); no bias before BatchNorm."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """A textbook U-Net for segmentation (3x64x64 in, one score map per class out): each
    decoder level concatenates the encoder's map of its size, so H and W must divide by 8."""

    def __init__(self, classes=2):
        super().__init__()
        self.down1, self.down2, self.down3 = double_conv(3, 16), double_conv(16, 32), double_conv(32, 64)
        self.pool = nn.MaxPool2d(2)
        self.bottom = double_conv(64, 128)
        self.up3, self.dec3 = nn.ConvTranspose2d(128, 64, 2, stride=2), double_conv(128, 64)
        self.up2, self.dec2 = nn.ConvTranspose2d(64, 32, 2, stride=2), double_conv(64, 32)
        self.up1, self.dec1 = nn.ConvTranspose2d(32, 16, 2, stride=2), double_conv(32, 16)
        self.head = nn.Conv2d(16, classes, 1)

    def forward(self, x):
        a = self.down1(x)
        b = self.down2(self.pool(a))
        c = self.down3(self.pool(b))
        y = self.bottom(self.pool(c))
        y = self.dec3(torch.cat([c, self.up3(y)], dim=1))
        y = self.dec2(torch.cat([b, self.up2(y)], dim=1))
        y = self.dec1(torch.cat([a, self.up1(y)], dim=1))
        return self.head(y)

"""The torchvggish architecture (harritaylor/torchvggish) in PyTorch, written here: the benchmark's PyTorch peer.

Its layer indices give the exact state-dict keys of the published vggish-10086976.pth, and its forward moves
channels last with two transposes before flattening, as torchvggish does.
"""
import torch
from torch import nn


class TorchVGGish(nn.Module):
    def __init__(self, final_relu: bool = True):
        super().__init__()
        layers, in_ch = [], 1
        for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_ch, v, 3, padding=1), nn.ReLU(inplace=True)]
                in_ch = v
        self.features = nn.Sequential(*layers)
        head = [nn.Linear(512 * 4 * 6, 4096), nn.ReLU(True), nn.Linear(4096, 4096), nn.ReLU(True), nn.Linear(4096, 128)]
        self.embeddings = nn.Sequential(*(head + [nn.ReLU(True)] if final_relu else head))

    def forward(self, x):  # x: [B, 1, 96, 64]
        x = self.features(x)
        x = torch.transpose(x, 1, 3)
        x = torch.transpose(x, 1, 2)
        return self.embeddings(x.contiguous().view(x.size(0), -1))


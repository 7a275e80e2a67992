"""Tests of ravine.curvature against dense torch.func references."""

"""The Winograd filter cache: saved once per weights, reused bit-identically, refused when it
does not match, a cache that cannot be written only logged."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from actormatte import pipeline
from actormatte.config import MaskConfig, PropagateConfig
from actormatte.propagation import filter_cache, winograd


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(8, 6, 3, padding=1)
        self.b = nn.Conv2d(6, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = winograd.conv3x3_same(self.a, x)
        part = winograd.conv3x3_same(self.b, y[:, 2:], slice(2, None), with_bias=False)
        return winograd.conv3x3_same(self.b, y) + part[:, :4]


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(winograd, "MIN_CHANNEL_PRODUCT", 1)


def _net(seed: int) -> _Net:
    torch.manual_seed(seed)
    return _Net().eval()


def test_saved_filters_are_reused_and_give_the_same_result(tmp_path: Path, wide: None,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(1, 8, 9, 7)
    first = _net(0)
    with torch.inference_mode():
        expected = first(x)
    path = filter_cache.cache_path(tmp_path, "abc")
    assert filter_cache.count(first) == 3
    assert filter_cache.save(first, path) == 3

    second = _net(0)
    assert filter_cache.load(second, path) == 3

    def no_transform(weight: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the filter should come from the file")

    monkeypatch.setattr(winograd, "winograd_filter", no_transform)
    with torch.inference_mode():
        assert torch.equal(second(x), expected)


def test_filters_of_other_weights_are_not_installed(tmp_path: Path, wide: None) -> None:
    first = _net(0)
    with torch.inference_mode():
        first(torch.randn(1, 8, 5, 5))
    path = filter_cache.cache_path(tmp_path, "abc")
    filter_cache.save(first, path)
    other = _net(1)
    assert filter_cache.load(other, path) == 0
    assert filter_cache.count(other) == 0
    path.write_bytes(path.read_bytes()[:100])  # damaged: ignored
    assert filter_cache.load(_net(0), path) == 0
    assert filter_cache.cache_path(tmp_path, "abc") != filter_cache.cache_path(tmp_path, "abd")


def test_a_second_propagate_loads_the_filters_and_matches(tmp_path: Path, make_shot,
                                                          models_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    shot = make_shot(3, width=64, height=64)
    cache = tmp_path / "cache"
    monkeypatch.setenv("ACTORMATTE_CACHE", str(cache))

    def propagate(work: Path) -> None:
        pipeline.propagate(pipeline.PropagateOptions(
            plate=shot.pattern, work=str(work), masks=MaskConfig(masks=(str(shot.ids),)),
            models=str(models_dir), device="cpu",
            propagate=PropagateConfig(size=-1), overwrite=True))

    propagate(tmp_path / "a")
    files = list(cache.glob(f"{filter_cache.FILE_PREFIX}*.pt"))
    assert len(files) == 1 and not list((tmp_path / "a").glob("*.pt"))
    reference = {p.name: p.read_bytes() for p in (tmp_path / "a" / "masks").iterdir()}
    calls: list[int] = []
    transform = winograd.winograd_filter
    monkeypatch.setattr(winograd, "winograd_filter",
                        lambda weight: calls.append(1) or transform(weight))
    # A fresh start (--overwrite), and another work folder: the filters come from the cache.
    propagate(tmp_path / "a")
    assert calls == []
    propagate(tmp_path / "b")
    assert calls == []
    assert {p.name: p.read_bytes() for p in (tmp_path / "a" / "masks").iterdir()} == reference


def test_an_unwritable_cache_only_warns(tmp_path: Path, make_shot, models_dir: Path,
                                        monkeypatch: pytest.MonkeyPatch,
                                        caplog: pytest.LogCaptureFixture) -> None:
    shot = make_shot(2, width=64, height=64)
    blocker = tmp_path / "not a folder"
    blocker.write_text("")
    monkeypatch.setenv("ACTORMATTE_CACHE", str(blocker / "cache"))
    result = pipeline.propagate(pipeline.PropagateOptions(
        plate=shot.pattern, work=str(tmp_path / "w"), masks=MaskConfig(masks=(str(shot.ids),)),
        models=str(models_dir), device="cpu", propagate=PropagateConfig(size=-1)))
    assert result.frames_propagated == 2
    assert "could not save the XMem filter cache" in caplog.text

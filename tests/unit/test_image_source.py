"""FolderImageSource and SyntheticCamera: where the inference loop's frames come from."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from simulators.camera import SyntheticCamera
from system.edge.image_source import FolderImageSource, ImageSourceError
from system.errors import EdgesimError
from tests.edge_fixtures import write_images


def _png(path: Path, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (value, value, value)).save(path)


def _jpeg(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path, format="JPEG")


def test_images_in_nested_folders_are_found_with_relative_names(tmp_path: Path) -> None:
    names = write_images(tmp_path, 8, (64, 64))
    assert any(name.count("/") == 2 for name in names) and any("/" not in name for name in names)
    source = FolderImageSource(tmp_path)
    assert source.rescan() == names


def test_cycle_walks_the_sorted_names_and_starts_over(tmp_path: Path) -> None:
    for name in ["b/2.png", "a.png", "c.bmp", "d/x_GT.png"]:
        _png(tmp_path / name)
    for name in ["b/1.jpg", "e.JPEG"]:
        _jpeg(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    source = FolderImageSource(tmp_path)
    order = [source.next_frame().name for _ in range(10)]
    expected = ["a.png", "b/1.jpg", "b/2.png", "c.bmp", "e.JPEG"]
    assert order == expected + expected
    assert source.frames == 10


def test_frames_carry_the_decoded_image(tmp_path: Path) -> None:
    _png(tmp_path / "only.png", 77)
    frame = FolderImageSource(tmp_path).next_frame()
    assert frame.name == "only.png"
    assert np.asarray(frame.image)[0, 0].tolist() == [77, 77, 77]


def test_random_order_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    write_images(tmp_path, 6, (64, 64))

    def draw(seed: int) -> list[str]:
        source = FolderImageSource(tmp_path, order="random", seed=seed)
        return [source.next_frame().name for _ in range(20)]

    assert draw(3) == draw(3)
    assert draw(3) != draw(4)
    assert len(set(draw(3))) > 1


def test_undecodable_file_is_skipped_counted_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "a-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    _png(tmp_path / "b-good.png")
    source = FolderImageSource(tmp_path, rescan_every=1)
    with caplog.at_level(logging.WARNING, logger="system.edge.image_source"):
        names = [source.next_frame().name for _ in range(4)]
    assert names == ["b-good.png"] * 4
    assert source.skipped == 1  # left out until it changes, so not re-read on every rescan
    assert sum("a-broken.png" in str(getattr(r, "fields", "")) for r in caplog.records) == 1


def test_undecodable_file_is_retried_once_it_changes(tmp_path: Path) -> None:
    broken = tmp_path / "late.png"
    broken.write_bytes(b"half written")
    _png(tmp_path / "other.png")
    source = FolderImageSource(tmp_path, rescan_every=1)
    assert source.next_frame().name == "other.png"
    _png(broken)
    assert {source.next_frame().name for _ in range(3)} == {"late.png", "other.png"}


def test_only_undecodable_files_is_an_error_saying_so(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"junk")
    with pytest.raises(ImageSourceError, match="undecodable"):
        FolderImageSource(tmp_path).next_frame()


def test_empty_or_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(ImageSourceError, match="no image files") as caught:
        FolderImageSource(tmp_path).next_frame()
    assert isinstance(caught.value, EdgesimError) and str(tmp_path) in str(caught.value)
    with pytest.raises(ImageSourceError, match="does not exist"):
        FolderImageSource(tmp_path / "missing").next_frame()


def test_files_added_later_are_picked_up(tmp_path: Path) -> None:
    source = FolderImageSource(tmp_path, rescan_every=3)
    with pytest.raises(ImageSourceError):
        source.next_frame()
    _png(tmp_path / "a.png")
    assert source.next_frame().name == "a.png"  # an empty list is rescanned on every call
    _png(tmp_path / "sub" / "b.png")
    names = [source.next_frame().name for _ in range(4)]
    assert "sub/b.png" in names  # at the latest when the cycle wraps


def test_random_order_picks_up_new_files_every_n_frames(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    source = FolderImageSource(tmp_path, order="random", seed=1, rescan_every=2)
    source.next_frame()
    _png(tmp_path / "b.png")
    assert "b.png" in {source.next_frame().name for _ in range(30)}


def test_vanished_file_is_dropped_without_an_error(tmp_path: Path) -> None:
    for name in ("a.png", "b.png", "c.png"):
        _png(tmp_path / name)
    source = FolderImageSource(tmp_path)
    assert source.next_frame().name == "a.png"
    (tmp_path / "b.png").unlink()
    assert [source.next_frame().name for _ in range(3)] == ["c.png", "a.png", "c.png"]


def test_bad_order_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="order"):
        FolderImageSource(tmp_path, order="shuffle")


def test_camera_frames_are_deterministic_per_seed_and_named_by_index() -> None:
    first, again, other = (
        SyntheticCamera(seed=5, size=(64, 96)),
        SyntheticCamera(5, (64, 96)),
        SyntheticCamera(6, (64, 96)),
    )
    frames = [first.next_frame() for _ in range(3)]
    assert [f.name for f in frames] == ["camera/000000", "camera/000001", "camera/000002"]
    assert frames[0].image.size == (64, 96) and frames[0].image.mode == "RGB"
    assert np.array_equal(np.asarray(frames[2].image), np.asarray([again.next_frame() for _ in range(3)][2].image))
    assert not np.array_equal(np.asarray(frames[0].image), np.asarray(other.next_frame().image))


def test_camera_defect_rate_and_ground_truth() -> None:
    camera = SyntheticCamera(seed=0, size=(64, 64), defect_rate=0.5)
    truths = [camera.is_defective(camera.next_frame().name) for _ in range(40)]
    assert 5 < sum(truths) < 35
    for index, truth in enumerate(truths[:10]):
        assert bool(camera.frame(index)[1].any()) == truth
    assert not any(SyntheticCamera(size=(64, 64), defect_rate=0.0).frame(i)[1].any() for i in range(5))

"""system.cloud.prepare: the seed's layouts on the object store, then split, augment and report."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from simulators.object_store import InMemoryObjectStore
from simulators.surfaces import write_dataset
from system.agent.package import Preprocessing
from system.cloud import prepare as prepare_module
from system.cloud.dataset import Sample, load_split
from system.cloud.prepare import (
    DataError,
    augment,
    prepare_classification,
    prepare_segmentation,
    publish_seed_layout,
    read_classification,
    read_segmentation,
    stratified_split,
)
from system.cloud.splits import SPLITS, PreparedData
from system.preprocessing import preprocess

PARAMS = Preprocessing(height=32, width=32)
N_TRAIN, N_ANOMALOUS = 40, 10


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic KSDD2 (40 train images, 10 defective); tests copy it before changing it."""
    root = tmp_path_factory.mktemp("ksdd2")
    summary = write_dataset(root, n_train=N_TRAIN, n_test=2, defect_rate=N_ANOMALOUS / N_TRAIN, seed=3, size=(64, 160))
    assert summary.train.defective == N_ANOMALOUS
    return root


@pytest.fixture
def copy_of(dataset: Path, tmp_path: Path) -> Path:
    """A private copy of the data set's train split (as `<copy>/train`), free to corrupt."""
    shutil.copytree(dataset / "train", tmp_path / "train")
    return tmp_path


@pytest.fixture
def published(dataset: Path) -> InMemoryObjectStore:
    store = InMemoryObjectStore()
    publish_seed_layout(load_split(dataset, "train"), store, "data/")
    return store


# --- the seed layout ---------------------------------------------------------------------------


def test_seed_layout_is_written_with_the_right_keys_and_counts(dataset: Path) -> None:
    store = InMemoryObjectStore()
    samples = load_split(dataset, "train")
    report = publish_seed_layout(samples, store, "data")  # "data" and "data/" are the same prefix
    assert report == {"prefix": "data/", "images": 40, "normal": 30, "anomalous": 10, "objects_written": 120}
    ids = sorted(s.image.stem for s in samples)
    anomalous = sorted(s.image.stem for s in samples if s.anomalous)

    def names(folder: str) -> list[str]:
        return [key.rsplit("/", 1)[1] for key in store.list_keys(f"data/{folder}/")]

    assert names("img-classification/anomalous") == [f"{i}.png" for i in anomalous]
    assert len(names("img-classification/normal")) == 30
    assert (
        names("semantic-segmentation/images") == names("semantic-segmentation/masks") == sorted(f"{i}.png" for i in ids)
    )
    first = samples[0]
    assert store.get_bytes(f"data/semantic-segmentation/masks/{first.image.stem}.png") == first.mask.read_bytes()
    assert store.get_bytes(f"data/semantic-segmentation/images/{first.image.stem}.png") == first.image.read_bytes()


def test_corrupt_png_names_the_file_and_writes_nothing(copy_of: Path) -> None:
    samples = load_split(copy_of, "train")
    last = samples[-1].image  # the last sample: everything before it was valid, and still nothing is written
    last.write_bytes(last.read_bytes()[:100])
    store = InMemoryObjectStore()
    with pytest.raises(DataError, match=last.name):
        publish_seed_layout(samples, store)
    assert store.objects == {}


def test_corrupt_or_absent_mask_names_the_file_and_writes_nothing(copy_of: Path) -> None:
    samples = load_split(copy_of, "train")
    garbage = copy_of / "garbage_GT.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    store = InMemoryObjectStore()
    for mask in (garbage, copy_of / "absent_GT.png"):
        bad = [*samples[:5], Sample(samples[5].image, mask, True)]
        with pytest.raises(DataError, match=mask.name):
            publish_seed_layout(bad, store)
    assert store.objects == {}


def test_mask_of_another_size_names_both_files_and_writes_nothing(copy_of: Path) -> None:
    samples = load_split(copy_of, "train")
    mask = samples[7].mask
    Image.open(mask).resize((64, 150), Image.Resampling.NEAREST).save(mask)
    store = InMemoryObjectStore()
    with pytest.raises(DataError, match=rf"{mask.name} is 64x150 but its image .*{samples[7].image.name} is 64x160"):
        publish_seed_layout(samples, store)
    assert store.objects == {}


@pytest.mark.parametrize(("which", "mode"), [("image", "LA"), ("image", "I;16"), ("mask", "RGB")])
def test_unsupported_mode_is_refused_naming_the_file(copy_of: Path, which: str, mode: str) -> None:
    samples = load_split(copy_of, "train")
    path = samples[3].image if which == "image" else samples[3].mask
    Image.open(path).convert(mode).save(path)
    store = InMemoryObjectStore()
    with pytest.raises(DataError, match=rf"{path.name} has mode {mode}"):
        publish_seed_layout(samples, store)
    assert store.objects == {}


def test_non_png_and_duplicate_ids_are_refused(copy_of: Path) -> None:
    samples = load_split(copy_of, "train")
    jpeg = copy_of / "train" / "photo.png"
    Image.open(samples[0].image).convert("RGB").save(jpeg, format="JPEG")
    with pytest.raises(DataError, match=r"photo\.png is JPEG, not PNG"):
        publish_seed_layout([*samples[1:], Sample(jpeg, samples[0].mask, False)], InMemoryObjectStore())
    with pytest.raises(DataError, match="same id"):
        publish_seed_layout([samples[0], samples[0]], InMemoryObjectStore())
    with pytest.raises(DataError, match="no samples"):
        publish_seed_layout([], InMemoryObjectStore())


def test_objects_of_another_data_set_are_refused_but_republishing_is_allowed(dataset: Path) -> None:
    samples = load_split(dataset, "train")
    store = InMemoryObjectStore()
    publish_seed_layout(samples[:30], store)
    before = dict(store.objects)
    with pytest.raises(DataError, match="not part of this data set"):
        publish_seed_layout(samples[10:], store)
    assert store.objects == before
    publish_seed_layout(samples[:30], store)  # e.g. to finish a publication a store failure cut short
    assert store.objects == before


# --- reading the layout back -------------------------------------------------------------------


def test_read_classification_gives_keys_and_labels(published: InMemoryObjectStore) -> None:
    items = read_classification(published, "data/")
    assert len(items) == 40
    assert sum(label for _, label in items) == 10
    assert all(("/anomalous/" in key) == (label == 1) for key, label in items)


def test_an_empty_class_folder_is_named(dataset: Path) -> None:
    store = InMemoryObjectStore()
    publish_seed_layout([s for s in load_split(dataset, "train") if not s.anomalous], store)
    store.put_bytes("img-classification/anomalous/notes.txt", b"not an image")
    with pytest.raises(DataError, match=r"^img-classification/anomalous/ holds no images$"):
        read_classification(store)
    with pytest.raises(DataError, match="anomalous/ holds no images"):
        prepare_classification(store, "", PARAMS)


def test_an_image_in_both_classes_is_refused(published: InMemoryObjectStore) -> None:
    key = published.list_keys("data/img-classification/normal/")[0]
    published.put_bytes(key.replace("/normal/", "/anomalous/"), published.get_bytes(key))
    with pytest.raises(DataError, match="both classes"):
        read_classification(published, "data/")


def test_images_without_masks_and_masks_without_images_are_all_named(published: InMemoryObjectStore) -> None:
    images = published.list_keys("data/semantic-segmentation/images/")
    for key in images[:2]:
        del published.objects[key.replace("/images/", "/masks/")]
    published.put_bytes("data/semantic-segmentation/masks/99999.png", b"")
    with pytest.raises(DataError) as caught:
        read_segmentation(published, "data/")
    message = str(caught.value)
    assert "2 images without a mask" in message and images[0] in message and images[1] in message
    assert "1 masks without an image" in message and "masks/99999.png" in message


def test_a_corrupt_object_is_named_when_preparing(published: InMemoryObjectStore) -> None:
    key = published.list_keys("data/semantic-segmentation/masks/")[4]
    published.put_bytes(key, b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DataError, match=f"cannot decode {key}"):
        prepare_segmentation(published, "data/", PARAMS)


def test_a_mask_of_another_size_is_named_when_preparing(published: InMemoryObjectStore) -> None:
    key = published.list_keys("data/semantic-segmentation/masks/")[2]
    published.put_bytes(key, _png(np.zeros((10, 10), dtype=np.uint8)))
    with pytest.raises(DataError, match=f"mask {key} is 10x10"):
        prepare_segmentation(published, "data/", PARAMS)


def test_mixed_sizes_and_modes_are_prepared_alike(copy_of: Path) -> None:
    samples = load_split(copy_of, "train")
    original = np.asarray(Image.open(samples[0].image))
    Image.open(samples[0].image).convert("RGBA").save(samples[0].image)
    Image.open(samples[1].image).convert("L").save(samples[1].image)
    Image.open(samples[2].image).convert("P").save(samples[2].image)
    for path in (samples[3].image, samples[3].mask):
        Image.open(path).resize((80, 140), Image.Resampling.NEAREST).save(path)
    store = InMemoryObjectStore()
    publish_seed_layout(samples, store)
    for data in (prepare_classification(store, "", PARAMS), prepare_segmentation(store, "", PARAMS)):
        assert all(data.x[split].shape[1:] == (32, 32, 3) for split in SPLITS)
        split, index = _find(data, samples[0].image.stem)
        np.testing.assert_array_equal(data.x[split][index], preprocess(original, PARAMS)[0])  # alpha dropped


# --- split and augmentation --------------------------------------------------------------------


def test_split_is_stratified_and_covers_every_index_once() -> None:
    labels = [0] * 30 + [1] * 10
    split = stratified_split(labels, seed=0)
    assert sorted(i for name in SPLITS for i in split[name]) == list(range(40))
    anomalous = {name: sum(labels[i] for i in split[name]) for name in SPLITS}
    assert anomalous == {"train": 6, "val": 2, "test": 2}  # round(1.5) == 2 for val and test
    assert {name: len(split[name]) for name in SPLITS} == {"train": 28, "val": 6, "test": 6}


def test_split_is_deterministic_by_seed_and_seeds_differ() -> None:
    labels = [0] * 50 + [1] * 8
    assert stratified_split(labels, seed=7) == stratified_split(labels, seed=7)
    assert stratified_split(labels, seed=7) != stratified_split(labels, seed=8)


def test_every_split_gets_each_class_of_three_or_more() -> None:
    split = stratified_split([0] * 20 + [1] * 3, seed=1)
    assert all(sum(i >= 20 for i in split[name]) == 1 for name in SPLITS)
    tiny = stratified_split([1, 1], seed=1)  # fewer than 3: the largest fraction (train) takes them
    assert tiny == {"train": [0, 1], "val": [], "test": []}
    no_val = stratified_split([0] * 10, fractions=(0.8, 0.0, 0.2), seed=1)
    assert [len(no_val[name]) for name in SPLITS] == [8, 0, 2]


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.7, 0.2, 0.2), (1.2, -0.1, -0.1)])
def test_bad_fractions_are_refused(fractions: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError, match="fractions"):
        stratified_split([0, 1, 0], fractions=fractions, seed=0)


def test_augmentation_flips_image_and_mask_together_and_changes_only_image_brightness() -> None:
    image = np.random.default_rng(0).random((12, 20, 3), dtype=np.float32)
    mask = np.zeros((12, 20, 1), dtype=np.float32)
    mask[1:4, 2:6] = 1.0
    image[1:4, 2:6] = 5.0  # the defect: where the mask is
    variants = augment(image, mask, np.random.default_rng(4))
    flips = {"h": np.flip(mask, 1), "v": np.flip(mask, 0), "180": np.flip(mask, (0, 1))}
    seen = set()
    for new_image, new_mask in variants:
        assert new_mask is not None
        name = next(n for n, m in flips.items() if np.array_equal(new_mask, m))
        seen.add(name)
        axes = {"h": (1,), "v": (0,), "180": (0, 1)}[name]
        ratio = new_image / np.flip(image, axes)
        np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-5)  # one brightness factor, image only
        assert 0.85 <= ratio.flat[0] <= 1.15
        assert (new_image[new_mask[:, :, 0] == 1] > 4).all()  # the defect is still under its mask
    assert seen == {"h", "v", "180"}
    again = augment(image, mask, np.random.default_rng(4))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(variants, again, strict=True))
    assert all(m is None for _, m in augment(image, None, np.random.default_rng(4)))


# --- prepared data -----------------------------------------------------------------------------


def test_classification_augments_only_anomalous_training_images(published: InMemoryObjectStore) -> None:
    data = prepare_classification(published, "data/", PARAMS, seed=5, augment_copies=2)
    copies = [i for split in SPLITS for i in data.ids[split] if "#aug" in i]
    assert copies and all(i in data.ids["train"] for i in copies)
    train_labels = dict(zip(data.ids["train"], data.y["train"].tolist(), strict=True))
    assert all(train_labels[i] == 1 and train_labels[i.split("#")[0]] == 1 for i in copies)
    assert len(copies) == 2 * int(data.y["train"][: len(data.ids["train"]) - len(copies)].sum())
    _assert_no_leakage(data)
    _assert_counts_add_up(data)
    counts = data.report["counts"]
    assert counts["train"]["augmented"] == 12
    assert {s: counts[s]["anomalous"] for s in SPLITS} == {"train": 6, "val": 2, "test": 2}
    assert data.report["seed"] == 5 and data.report["fractions"] == [0.7, 0.15, 0.15]
    assert data.report["image_size"] == [32, 32] and data.report["preprocessing"] == PARAMS.to_dict()
    assert data.y["train"].dtype == np.int64 and data.x["train"].dtype == np.float32


def test_segmentation_augments_every_training_pair_keeping_masks_aligned(published: InMemoryObjectStore) -> None:
    data = prepare_segmentation(published, "data/", PARAMS, augment_copies=4)
    originals = [i for i in data.ids["train"] if "#aug" not in i]
    assert len(data.ids["train"]) == 5 * len(originals)
    assert data.report["counts"]["train"]["augmented"] == 4 * len(originals)
    assert data.y["test"].shape[1:] == (32, 32, 1) and set(np.unique(data.y["train"])) <= {0.0, 1.0}
    index = {i: n for n, i in enumerate(data.ids["train"])}
    for copy in (i for i in data.ids["train"] if "#aug" in i):
        image, mask = data.x["train"][index[copy]], data.y["train"][index[copy]]
        source = index[copy.split("#")[0]]
        matches = [axes for axes in ((1,), (0,), (0, 1)) if _is_flip_of(image, mask, data, source, axes)]
        assert matches, copy
    _assert_no_leakage(data)
    _assert_counts_add_up(data)
    assert sum(data.report["counts"][s]["anomalous"] for s in SPLITS) == N_ANOMALOUS


def test_defects_too_small_for_the_resize_are_counted() -> None:
    store = InMemoryObjectStore()
    for n in range(6):
        mask = np.zeros((160, 64), dtype=np.uint8)
        if n < 3:
            mask[81, 33] = 255 if n == 0 else 0  # one pixel: nearest-neighbour at 1/5 scale drops it
            mask[40:80, 10:40] = 0 if n == 0 else 255
        store.put_bytes(f"semantic-segmentation/images/{n}.png", _png(np.full((160, 64, 3), 90, dtype=np.uint8)))
        store.put_bytes(f"semantic-segmentation/masks/{n}.png", _png(mask))
    data = prepare_segmentation(store, "", PARAMS, augment_copies=0)
    assert data.report["masks_emptied_by_resize"] == 1
    assert sum(data.report["counts"][s]["anomalous"] for s in SPLITS) == 3  # judged at full size


def test_preparation_is_deterministic_by_seed(published: InMemoryObjectStore) -> None:
    first = prepare_classification(published, "data/", PARAMS, seed=1)
    again = prepare_classification(published, "data/", PARAMS, seed=1)
    other = prepare_classification(published, "data/", PARAMS, seed=2)
    assert first.ids == again.ids and first.report == again.report
    assert all(np.array_equal(first.x[s], again.x[s]) for s in SPLITS)
    assert first.ids["test"] != other.ids["test"]


def test_leakage_is_detected_and_refused(published: InMemoryObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def leaky(labels: list[int], **_: object) -> dict[str, list[int]]:
        return {"train": list(range(len(labels))), "val": [0], "test": [1]}

    monkeypatch.setattr(prepare_module, "stratified_split", leaky)
    with pytest.raises(DataError, match="leakage: ids in both train and val"):
        prepare_classification(published, "data/", PARAMS)


def test_bad_settings_are_refused_before_any_decoding(published: InMemoryObjectStore) -> None:
    with pytest.raises(ValueError, match="NHWC"):
        prepare_classification(published, "data/", Preprocessing(layout="NCHW"))
    with pytest.raises(ValueError, match="augment_copies"):
        prepare_segmentation(published, "data/", PARAMS, augment_copies=-1)
    with pytest.raises(ValueError, match="fractions"):
        prepare_segmentation(published, "data/", PARAMS, fractions=(0.9, 0.2, 0.1))


def test_prepared_data_round_trips_through_bytes(published: InMemoryObjectStore) -> None:
    for data in (
        prepare_classification(published, "data/", PARAMS, augment_copies=1),
        prepare_segmentation(published, "data/", PARAMS, augment_copies=1),
    ):
        back = PreparedData.from_bytes(data.to_bytes())
        assert back.task == data.task and back.preprocessing == data.preprocessing
        assert back.ids == data.ids and back.report == data.report
        for split in SPLITS:
            np.testing.assert_array_equal(back.x[split], data.x[split])
            np.testing.assert_array_equal(back.y[split], data.y[split])
            assert back.y[split].dtype == data.y[split].dtype


# --- helpers -----------------------------------------------------------------------------------


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _find(data: PreparedData, image_id: str) -> tuple[str, int]:
    return next((split, data.ids[split].index(image_id)) for split in SPLITS if image_id in data.ids[split])


def _is_flip_of(image: np.ndarray, mask: np.ndarray, data: PreparedData, source: int, axes: tuple[int, ...]) -> bool:
    """Is (image, mask) the training pair `source` flipped over `axes`, the image brighter or darker?"""
    flipped = np.flip(data.x["train"][source], axes)
    factor = float((image * flipped).sum() / (flipped * flipped).sum())
    return np.array_equal(mask, np.flip(data.y["train"][source], axes)) and np.allclose(
        image, factor * flipped, atol=1e-5
    )


def _assert_no_leakage(data: PreparedData) -> None:
    train_sources = {i.split("#aug")[0] for i in data.ids["train"]}
    for split in ("val", "test"):
        assert not any("#aug" in i for i in data.ids[split])
        assert not train_sources & set(data.ids[split])
    assert not set(data.ids["val"]) & set(data.ids["test"])


def _assert_counts_add_up(data: PreparedData) -> None:
    counts = data.report["counts"]
    for split in SPLITS:
        c = counts[split]
        assert c["normal"] + c["anomalous"] + c["augmented"] == c["total"] == len(data.x[split])
    assert sum(counts[s]["normal"] + counts[s]["anomalous"] for s in SPLITS) == N_TRAIN

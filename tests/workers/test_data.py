"""Datasets load from their real on-disk formats; splits, batches and augmentation behave."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from formats import WRITERS, write_cifar10, write_mnist
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.data import (
    DATASETS,
    DatasetUnavailable,
    augment_cifar,
    iterate_batches,
    load_dataset,
    mnist1d_cache_path,
)

# name: (input_shape, num_classes, train rows written, test rows written, channel mean, std)
TORCHVISION_CASES = {
    "mnist": ((1, 28, 28), 10, 64, 16, (0.1307,), (0.3081,)),
    "fashion_mnist": ((1, 28, 28), 10, 64, 16, (0.2860,), (0.3530,)),
    "cifar10": ((3, 32, 32), 10, 40, 16, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((3, 32, 32), 100, 40, 16, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def _requantize(x: torch.Tensor, mean, std) -> np.ndarray:
    """Undo the normalization by hand: back to the uint8 pixels that were written."""
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return torch.round((x * s + m) * 255).to(torch.uint8).numpy()


def _row_index(images: np.ndarray) -> dict[bytes, int]:
    return {row.tobytes(): i for i, row in enumerate(images)}


@pytest.mark.parametrize("name", sorted(TORCHVISION_CASES))
def test_torchvision_dataset_loads_from_real_format(tmp_path: Path, name: str) -> None:
    shape, classes, n_train, n_test, mean, std = TORCHVISION_CASES[name]
    written = WRITERS[name](tmp_path)
    data = load_dataset(name, data_dir=tmp_path, seed=3, val_fraction=0.25)

    assert data.input_shape == shape and data.num_classes == classes
    for x, y in (data.train, data.val, data.test):
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape[1:] == shape
    sizes = (len(data.train[1]), len(data.val[1]), len(data.test[1]))
    assert sizes == (n_train * 3 // 4, n_train // 4, n_test)

    # test split: the written test rows, in order, untouched by the validation split
    np.testing.assert_array_equal(_requantize(data.test[0], mean, std), written["test"].images)
    np.testing.assert_array_equal(data.test[1].numpy(), written["test"].labels)

    # train and val: disjoint, together exactly the written training rows with their labels
    index = _row_index(written["train"].images)
    rows = {}
    for split in ("train", "val"):
        x, y = getattr(data, split)
        rows[split] = [index[r.tobytes()] for r in _requantize(x, mean, std)]
        np.testing.assert_array_equal(y.numpy(), written["train"].labels[rows[split]])
    assert not set(rows["train"]) & set(rows["val"])
    assert sorted(rows["train"] + rows["val"]) == list(range(n_train))


def test_mnist_reads_gzipped_idx_like_extracted(tmp_path: Path) -> None:
    write_mnist(tmp_path / "plain", compress=False)
    write_mnist(tmp_path / "gz", compress=True)
    plain = load_dataset("mnist", data_dir=tmp_path / "plain")
    gz = load_dataset("mnist", data_dir=tmp_path / "gz")
    for a, b in ((plain.train, gz.train), (plain.val, gz.val), (plain.test, gz.test)):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mnist", "MNIST/raw/train-images-idx3-ubyte(.gz)"),
        ("fashion_mnist", "FashionMNIST/raw/t10k-labels-idx1-ubyte(.gz)"),
        ("cifar10", "cifar-10-batches-py/data_batch_5"),
        ("cifar100", "cifar-100-python/meta"),
    ],
)
def test_missing_files_name_directory_and_files(tmp_path: Path, name: str, expected: str) -> None:
    with pytest.raises(DatasetUnavailable) as caught:
        load_dataset(name, data_dir=tmp_path / "empty")
    message = str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)
    assert str(tmp_path / "empty") in message and expected in message
    assert "download: true" in message and "DECAYLAB_DOWNLOAD=1" in message


def test_partly_missing_cifar_names_only_the_missing_file(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetUnavailable, match="data_batch_3") as caught:
        load_dataset("cifar10", data_dir=tmp_path)
    assert "data_batch_2" not in str(caught.value)


def test_data_file_cannot_run_code(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as handle:
        pickle.dump({"data": Payload(), "labels": [0]}, handle, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_dataset("cifar10", data_dir=tmp_path)
    assert not marker.exists()


def test_validation_split_is_seeded(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    first, again = (load_dataset("mnist", data_dir=tmp_path, seed=1) for _ in range(2))
    other = load_dataset("mnist", data_dir=tmp_path, seed=2)
    assert torch.equal(first.val[0], again.val[0]) and torch.equal(first.train[1], again.train[1])
    assert not torch.equal(first.val[0], other.val[0])
    assert torch.equal(first.test[0], other.test[0])


@pytest.mark.parametrize(("fraction", "n_val"), [(0.0, 0), (0.1, 6), (0.5, 32)])
def test_val_fraction_sets_validation_size(tmp_path: Path, fraction: float, n_val: int) -> None:
    write_mnist(tmp_path)
    data = load_dataset("mnist", data_dir=tmp_path, val_fraction=fraction)
    assert (len(data.val[1]), len(data.train[1])) == (n_val, 64 - n_val)


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_bad_val_fraction_is_refused(tmp_path: Path, fraction: float) -> None:
    write_mnist(tmp_path)
    with pytest.raises(ValueError, match="val_fraction"):
        load_dataset("mnist", data_dir=tmp_path, val_fraction=fraction)


def test_unknown_dataset_lists_known_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mnist1d, digits, mnist, fashion_mnist, cifar10"):
        load_dataset("imagenet", data_dir=tmp_path)


def test_digits_are_scikit_learns_images(tmp_path: Path) -> None:
    data = load_dataset("digits", data_dir=tmp_path, val_fraction=0.1)
    n_test = 359  # 20% of sklearn's 1797 digits
    n_val = round(0.1 * (1797 - n_test))
    assert (len(data.train[1]), len(data.val[1]), len(data.test[1])) == (1438 - n_val, n_val, 359)
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10
    pixels = torch.cat([data.train[0], data.val[0], data.test[0]])
    assert pixels.min() == 0.0 and pixels.max() == 1.0
    assert set(data.test[1].tolist()) == set(range(10))
    assert torch.equal(data.test[0], load_dataset("digits", data_dir=tmp_path, seed=9).test[0])


@pytest.fixture(scope="module")
def mnist1d_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mnist1d-data")


def test_mnist1d_is_the_published_size_and_leaves_global_rng_alone(mnist1d_dir: Path) -> None:
    np.random.seed(123)
    expected_draw = np.random.rand()
    np.random.seed(123)
    data = load_dataset("mnist1d", data_dir=mnist1d_dir, val_fraction=0.1)
    assert np.random.rand() == expected_draw
    assert (len(data.train[1]), len(data.val[1]), len(data.test[1])) == (3600, 400, 1000)
    assert data.input_shape == (40,) and data.num_classes == 10
    assert data.train[0].dtype == torch.float32 and data.test[1].dtype == torch.int64
    assert torch.bincount(data.test[1], minlength=10).min() > 50  # every digit, roughly balanced
    assert mnist1d_cache_path(mnist1d_dir).is_file()


def test_mnist1d_generation_is_deterministic(mnist1d_dir: Path, tmp_path: Path) -> None:
    cached = load_dataset("mnist1d", data_dir=mnist1d_dir)
    fresh = load_dataset("mnist1d", data_dir=tmp_path)  # generated again, from nothing
    assert torch.equal(cached.train[0], fresh.train[0])
    assert torch.equal(cached.test[1], fresh.test[1])


def test_mnist1d_second_load_reads_the_cache(mnist1d_dir: Path) -> None:
    load_dataset("mnist1d", data_dir=mnist1d_dir)
    path = mnist1d_cache_path(mnist1d_dir)
    with np.load(path) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["x_test"] = np.full_like(arrays["x_test"], 7.0)  # a mark only the cache carries
    np.savez(path, **arrays)
    assert torch.all(load_dataset("mnist1d", data_dir=mnist1d_dir).test[0] == 7.0)
    for damaged in (b"not an npz", path.read_bytes()[:1000]):  # regenerated, not fatal
        path.write_bytes(damaged)
        assert load_dataset("mnist1d", data_dir=mnist1d_dir).test[0].std() > 0.5


def test_registry_matches_catalog() -> None:
    catalog = pytest.importorskip("studies.catalog")
    assert tuple(DATASETS) == tuple(catalog.DATASET_NAMES)


def test_splits_move_to_device(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    data = load_dataset("mnist", data_dir=tmp_path).to("meta")
    assert all(t.device.type == "meta" for pair in (data.train, data.val, data.test) for t in pair)
    assert data.input_shape == (1, 28, 28)


# --- batches -------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 200), batch_size=st.integers(1, 64), shuffle=st.booleans())
def test_batches_cover_every_sample_once(n: int, batch_size: int, shuffle: bool) -> None:
    y = torch.arange(n)
    x = y.float()[:, None].repeat(1, 3)
    batches = list(iterate_batches(x, y, batch_size, generator=torch.Generator(), shuffle=shuffle))
    assert len(batches) == math.ceil(n / batch_size)
    assert all(len(yb) == batch_size for _, yb in batches[:-1])
    seen = torch.cat([yb for _, yb in batches])
    assert sorted(seen.tolist()) == list(range(n))
    assert all(torch.equal(xb[:, 0], yb.float()) for xb, yb in batches)  # rows stay paired
    if not shuffle:
        assert seen.tolist() == list(range(n))


def test_batch_order_follows_the_generator() -> None:
    y = torch.arange(100)

    def order(seed: int) -> list[int]:
        gen = torch.Generator().manual_seed(seed)
        return torch.cat([b for _, b in iterate_batches(y, y, 16, generator=gen)]).tolist()

    assert order(0) == order(0) and order(0) != order(1) and order(0) != list(range(100))


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        next(iterate_batches(torch.zeros(4), torch.zeros(4), 0))


# --- augmentation --------------------------------------------------------------------------


def _images(n: int = 16) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0)) + 1.0


def _candidates(image: torch.Tensor, pad: int) -> list[torch.Tensor]:
    """Every crop and flip of a zero-padded image, written out the slow way."""
    padded = torch.zeros(3, 32 + 2 * pad, 32 + 2 * pad)
    padded[:, pad : pad + 32, pad : pad + 32] = image
    shifts = range(2 * pad + 1)
    crops = [padded[:, i : i + 32, j : j + 32] for i in shifts for j in shifts]
    return crops + [c.flip(-1) for c in crops]


def test_augment_is_a_random_crop_and_flip_of_each_image() -> None:
    x = _images(8)
    out = augment_cifar(x, torch.Generator().manual_seed(5))
    assert out.shape == x.shape and out.dtype == x.dtype
    for image, result in zip(x, out, strict=True):
        assert any(torch.equal(result, c) for c in _candidates(image, pad=4))
    assert not torch.equal(out, x)


def test_augment_flips_are_real_flips() -> None:
    x = _images(64)
    out = augment_cifar(x, torch.Generator().manual_seed(1), padding=0)
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x, strict=True)]
    kept = [torch.equal(o, i) for o, i in zip(out, x, strict=True)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))  # each is one or the other
    assert 10 < sum(flipped) < 54  # about half


def test_augment_is_deterministic_per_generator() -> None:
    x = _images()
    first = augment_cifar(x, torch.Generator().manual_seed(3))
    assert torch.equal(first, augment_cifar(x, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, augment_cifar(x, torch.Generator().manual_seed(4)))


@pytest.mark.parametrize(("mode", "has_zeros"), [("zeros", True), ("reflect", False)])
def test_augment_padding_modes(mode: str, has_zeros: bool) -> None:
    out = augment_cifar(_images(64), torch.Generator().manual_seed(0), mode=mode)
    assert bool((out == 0).any()) == has_zeros  # inputs are all >= 1: zeros come from padding


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_batches_and_augmentation_on_cuda_match_cpu() -> None:
    x, y = _images(32), torch.arange(32)
    cpu = [
        (augment_cifar(xb, gen), yb)
        for gen in [torch.Generator().manual_seed(0)]
        for xb, yb in iterate_batches(x, y, 8, generator=gen)
    ]
    cuda = [
        (augment_cifar(xb, gen), yb)
        for gen in [torch.Generator().manual_seed(0)]
        for xb, yb in iterate_batches(x.cuda(), y.cuda(), 8, generator=gen)
    ]
    for (xc, yc), (xg, yg) in zip(cpu, cuda, strict=True):
        assert xg.is_cuda and torch.equal(xc, xg.cpu()) and torch.equal(yc, yg.cpu())

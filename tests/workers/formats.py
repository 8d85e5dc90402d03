"""Writers of tiny dataset files in the real on-disk formats that torchvision downloads.

MNIST / FashionMNIST: IDX files under `<root>/<MNIST|FashionMNIST>/raw/` (torchvision extracts the
.gz archives there; `compress=True` writes the .gz form instead). CIFAR-10 / CIFAR-100: the python
pickles under `cifar-10-batches-py/` and `cifar-100-python/`, with the keys and layout of the
originals (uint8 rows of 3072 = 3 planes of 32×32, labels as Python lists, str keys).
"""

from __future__ import annotations

import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MNIST_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}


@dataclass(frozen=True)
class WrittenImages:
    """The uint8 images ([N, C, H, W]) and labels written for one split, for comparisons."""

    images: np.ndarray
    labels: np.ndarray


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: magic 0x00000800 + ndim, big-endian sizes, then the data."""
    header = bytes([0, 0, 0x08, array.ndim])
    sizes = b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    return header + sizes + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _random_split(rng: np.random.Generator, n: int, shape: tuple[int, ...], classes: int):
    images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    labels = np.arange(n) % classes  # spread over the classes
    rng.shuffle(labels)
    return WrittenImages(images, labels.astype(np.uint8 if classes <= 256 else np.int64))


def write_mnist(
    root: Path, name: str = "mnist", *, n_train: int = 64, n_test: int = 16, compress=False, seed=0
) -> dict[str, WrittenImages]:
    """Write tiny MNIST-format IDX files for `name` ("mnist" or "fashion_mnist") under root."""
    rng = np.random.default_rng(seed)
    raw = Path(root) / MNIST_FOLDERS[name] / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        data = _random_split(rng, n, (1, 28, 28), 10)
        for kind, array in (("images-idx3", data.images[:, 0]), ("labels-idx1", data.labels)):
            stem = f"{prefix}-{kind}-ubyte"
            payload = idx_bytes(array)
            if compress:
                (raw / f"{stem}.gz").write_bytes(gzip.compress(payload))
            else:
                (raw / stem).write_bytes(payload)
        written[split] = data
    return written


def _dump(path: Path, entry: dict) -> None:
    # protocol 2 and str keys: what loading the Python-2 originals with encoding="latin1" yields
    with open(path, "wb") as handle:
        pickle.dump(entry, handle, protocol=2)


def _cifar_batch(data: WrittenImages, label_key: str, batch_label: str) -> dict:
    n = len(data.labels)
    return {
        "batch_label": batch_label,
        label_key: [int(v) for v in data.labels],
        "data": data.images.reshape(n, 3 * 32 * 32),
        "filenames": [f"img_{i:05d}.png" for i in range(n)],
    }


def write_cifar10(
    root: Path, *, per_batch: int = 8, n_test: int = 16, seed: int = 0
) -> dict[str, WrittenImages]:
    """Write data_batch_1..5, test_batch and batches.meta under root/cifar-10-batches-py."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    batches = [_random_split(rng, per_batch, (3, 32, 32), 10) for _ in range(5)]
    for i, batch in enumerate(batches, start=1):
        entry = _cifar_batch(batch, "labels", f"training batch {i} of 5")
        _dump(folder / f"data_batch_{i}", entry)
    test = _random_split(rng, n_test, (3, 32, 32), 10)
    _dump(folder / "test_batch", _cifar_batch(test, "labels", "testing batch 1 of 1"))
    names = ["airplane", "automobile", "bird", "cat", "deer"]
    names += ["dog", "frog", "horse", "ship", "truck"]
    meta = {"num_cases_per_batch": per_batch, "label_names": names, "num_vis": 3072}
    _dump(folder / "batches.meta", meta)
    train = WrittenImages(
        np.concatenate([b.images for b in batches]), np.concatenate([b.labels for b in batches])
    )
    return {"train": train, "test": test}


def write_cifar100(
    root: Path, *, n_train: int = 40, n_test: int = 16, seed: int = 0
) -> dict[str, WrittenImages]:
    """Write train, test and meta under root/cifar-100-python (fine and coarse labels)."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, n in (("train", n_train), ("test", n_test)):
        data = _random_split(rng, n, (3, 32, 32), 100)
        entry = _cifar_batch(data, "fine_labels", split)
        entry["coarse_labels"] = [int(v) // 5 for v in data.labels]
        _dump(folder / split, entry)
        written[split] = data
    meta = {
        "fine_label_names": [f"fine_{i}" for i in range(100)],
        "coarse_label_names": [f"coarse_{i}" for i in range(20)],
    }
    _dump(folder / "meta", meta)
    return written


WRITERS = {
    "mnist": lambda root: write_mnist(root, "mnist"),
    "fashion_mnist": lambda root: write_mnist(root, "fashion_mnist"),
    "cifar10": write_cifar10,
    "cifar100": write_cifar100,
}

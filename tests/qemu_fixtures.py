"""The real QEMU guest for the QEMU tests: booted once per run (``qemu_lab``, session scope)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pytest_psdirect.lab.qemu import QemuLab, missing_facilities

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_qemu() -> None:
    """Skip when QEMU or the image's packages are missing; in CI, fail (CI runs this tier)."""
    why = missing_facilities()
    if why:
        if IN_CI:
            pytest.fail(f"CI must run the QEMU tests, but {why}", pytrace=False)
        pytest.skip(why)


@pytest.fixture(scope="session")
def qemu_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QemuLab]:
    """One small guest (busybox + qemu-ga) on a qcow2 overlay, its agent answering."""
    require_qemu()
    lab = QemuLab(tmp_path_factory.mktemp("qemu"))
    lab.up()
    yield lab
    lab.down()

"""The package itself: a light import, helpers loaded on first use, an honest __all__."""

import subprocess
import sys

import pytest

import mafkit


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; {code}; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


@pytest.mark.slow
def test_import_mafkit_loads_neither_matplotlib_nor_the_course_helpers() -> None:
    loaded = _modules_after("import mafkit")
    assert "torch" in loaded
    assert not {"matplotlib", "sklearn", "mafkit.plot", "mafkit.exercises"} & loaded


@pytest.mark.slow
def test_the_course_helpers_load_on_first_use() -> None:
    loaded = _modules_after("import mafkit; mafkit.plot")
    assert {"mafkit.plot", "matplotlib"} <= loaded


def test_every_public_name_exists() -> None:
    for name in mafkit.__all__:
        assert getattr(mafkit, name) is not None, name


def test_an_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'MAFF'"):
        mafkit.MAFF  # noqa: B018

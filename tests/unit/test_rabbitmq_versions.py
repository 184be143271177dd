"""One RabbitMQ version wherever it is deployed, and the README says which one runs where."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from shared.settings import PROJECT_ROOT
from tests.servers import RABBITMQ_IMAGE

pytestmark = pytest.mark.unit

#: Where Debian's rabbitmq-server package keeps its release (`rabbitmq_server-<version>`).
DEBIAN_RELEASES = Path("/usr/lib/rabbitmq/lib")


def _readme() -> str:
    return (PROJECT_ROOT / "README.md").read_text()


def _readme_row(where: str) -> str:
    """The RabbitMQ cell of the README's versions table row that starts with `where`."""
    for line in _readme().splitlines():
        if line.startswith(f"| {where}"):
            return line.rsplit("|", 2)[-2]
    raise AssertionError(f"the README's RabbitMQ versions table has no row for {where!r}")


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _image_version(image: str) -> str:
    match = re.fullmatch(r"rabbitmq:(\d+\.\d+\.\d+)-management", image)
    assert match, f"{image!r} is not a pinned rabbitmq:<major.minor.patch>-management tag"
    return match[1]


def _compose_image() -> str:
    compose: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())
    image: str = compose["services"]["rabbitmq"]["image"]
    return image


def _manifest_image() -> str:
    path = PROJECT_ROOT / "deploy" / "k8s" / "base" / "rabbitmq-cluster.yaml"
    image: str = yaml.safe_load(path.read_text())["spec"]["image"]
    return image


def test_compose_the_manifests_and_the_test_containers_run_one_pinned_image() -> None:
    images = {
        "compose.yaml": _compose_image(),
        "deploy/k8s": _manifest_image(),
        "tests/servers.py": RABBITMQ_IMAGE,
    }
    assert len(set(images.values())) == 1, images
    _image_version(RABBITMQ_IMAGE)  # a patch release, not a moving tag


def test_no_other_manifest_names_another_rabbitmq_image() -> None:
    files = [PROJECT_ROOT / "compose.yaml", *(PROJECT_ROOT / "deploy" / "k8s").glob("[!c]*/**/*")]
    for path in files:
        if path.is_file() and path.suffix in (".yaml", ".yml"):
            for image in re.findall(r"image:\s*[\"']?(\S*rabbitmq\S*?)[\"']?\s", path.read_text()):
                assert image == RABBITMQ_IMAGE, (path, image)


def test_the_readme_states_the_deployed_image() -> None:
    assert f"`{RABBITMQ_IMAGE}`" in _readme_row("`compose.yaml`")
    assert _readme_row("`compose.yaml`").strip().startswith(_minor(_image_version(RABBITMQ_IMAGE)))


def test_the_readme_states_the_launchers_rabbitmq_as_installed() -> None:
    releases = sorted(DEBIAN_RELEASES.glob("rabbitmq_server-*"))
    assert releases, "rabbitmq-server is not installed (./dev test installs it)"
    installed = releases[-1].name.removeprefix("rabbitmq_server-")
    stated = _readme_row("the launcher").strip()
    # the minor version is the claim (the README's reasoning rests on it); the patch is named
    assert stated.startswith(f"{_minor(installed)}:"), (installed, stated)
    assert f"({installed}," in stated, (installed, stated)

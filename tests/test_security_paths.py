"""The path guard against a real directory tree with real symlinks, table-driven."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tether.security.paths import UnsafePath, resolve_under


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/ with files, a subfolder, symlinks inside and out; a secret beside the root."""
    root = tmp_path / "root"
    (root / "images" / "deep").mkdir(parents=True)
    (root / "images" / "a.jpg").write_bytes(b"a")
    (root / "images" / "deep" / "b.jpg").write_bytes(b"b")
    (root / "100%.txt").write_text("percent")
    (root / "name with spaces.txt").write_text("s")
    (root / "..hidden").write_text("dots in a name are not a segment")
    (tmp_path / "secret.txt").write_text("outside")
    (tmp_path / "root-sibling").mkdir()  # shares the root's name as a prefix
    (tmp_path / "root-sibling" / "x.txt").write_text("x")
    os.symlink(root / "images", root / "inside-link")
    os.symlink(tmp_path / "secret.txt", root / "escape-file")
    os.symlink(tmp_path, root / "escape-dir")
    os.symlink("../root-sibling", root / "relative-escape")
    return root


ACCEPTED = [
    ("images/a.jpg", "images/a.jpg"),
    ("./images/a.jpg", "images/a.jpg"),
    ("images//deep/./b.jpg", "images/deep/b.jpg"),
    ("images/deep/", "images/deep"),
    ("100%.txt", "100%.txt"),
    ("name with spaces.txt", "name with spaces.txt"),
    ("..hidden", "..hidden"),
    ("inside-link/a.jpg", "images/a.jpg"),  # a symlink that stays under the root is fine
    ("images/not-there-yet.jpg", "images/not-there-yet.jpg"),  # targets need not exist
    (".", ""),
    ("escape-dir/root/images/a.jpg", "images/a.jpg"),  # out and back in: the real path counts
]


@pytest.mark.parametrize(("given", "expected"), ACCEPTED)
def test_paths_under_the_root_resolve_to_their_real_path(
    tree: Path, given: str, expected: str
) -> None:
    assert resolve_under(tree, given) == (tree / expected).resolve()


REFUSED = [
    ("../secret.txt", "'..' segment"),
    ("images/../../secret.txt", "'..' segment"),
    ("images/../a.jpg", "'..' segment"),  # refused even though it would stay inside
    ("..", "'..' segment"),
    ("images/..", "'..' segment"),
    ("/etc/passwd", "relative to the root"),
    ("//etc/passwd", "relative to the root"),
    ("images\\..\\..\\secret.txt", "backslash"),
    ("..\\secret.txt", "backslash"),
    ("C:/Windows/win.ini", "drive letter"),
    ("c:secret", "drive letter"),
    ("images/a.jpg\x00.png", "control character"),
    ("\x00", "control character"),
    ("images/\nx", "control character"),
    ("", "empty"),
    ("escape-file", "outside the root"),
    ("escape-dir/secret.txt", "outside the root"),
    ("relative-escape/x.txt", "outside the root"),
]


@pytest.mark.parametrize(("given", "reason"), REFUSED)
def test_hostile_paths_are_refused(tree: Path, given: str, reason: str) -> None:
    with pytest.raises(UnsafePath, match=reason) as caught:
        resolve_under(tree, given)
    assert caught.value.status == 422
    assert caught.value.code == "unsafe_path"


URL_ACCEPTED = [
    ("images/a.jpg", "images/a.jpg"),
    ("images%2Fa.jpg", "images/a.jpg"),
    ("name%20with%20spaces.txt", "name with spaces.txt"),
    ("100%25.txt", "100%.txt"),  # a literal percent sign, encoded once
]


@pytest.mark.parametrize(("given", "expected"), URL_ACCEPTED)
def test_url_encoded_paths_are_decoded_once(tree: Path, given: str, expected: str) -> None:
    assert resolve_under(tree, given, url_encoded=True) == (tree / expected).resolve()


URL_REFUSED = [
    ("%2e%2e/secret.txt", "'..' segment"),
    ("%2E%2E%2Fsecret.txt", "'..' segment"),
    ("images%2f%2e%2e%2f%2e%2e%2fsecret.txt", "'..' segment"),
    ("%252e%252e%252fsecret.txt", "'..' segment"),  # double-encoded
    ("%25252e%25252e/secret.txt", "'..' segment"),  # triple-encoded
    ("..%2fsecret.txt", "'..' segment"),
    ("%2fetc%2fpasswd", "relative to the root"),
    ("..%5csecret.txt", "backslash"),
    ("%255c..%255csecret.txt", "backslash"),
    ("images/a.jpg%00.png", "control character"),
    ("images/a.jpg%2500.png", "control character"),  # a NUL behind two encodings
    ("%c0%ae%c0%ae/secret.txt", "UTF-8"),  # overlong UTF-8 dots
    ("%ff", "UTF-8"),
    ("%2525252525252e", "too many times"),
]


@pytest.mark.parametrize(("given", "reason"), URL_REFUSED)
def test_encoded_traversal_is_refused(tree: Path, given: str, reason: str) -> None:
    with pytest.raises(UnsafePath, match=reason):
        resolve_under(tree, given, url_encoded=True)


def test_encoded_text_is_taken_literally_when_not_url_encoded(tree: Path) -> None:
    """Outside URLs a percent sign is just a character: nothing decodes it later."""
    assert resolve_under(tree, "%2e%2e") == (tree / "%2e%2e").resolve()


def test_absolute_paths_only_when_allowed_and_under_the_root(tree: Path) -> None:
    inside = str(tree / "images" / "a.jpg")
    assert resolve_under(tree, inside, allow_absolute=True) == Path(inside).resolve()
    with pytest.raises(UnsafePath, match="relative"):
        resolve_under(tree, inside)
    with pytest.raises(UnsafePath, match="outside the root"):
        resolve_under(tree, str(tree.parent / "secret.txt"), allow_absolute=True)
    with pytest.raises(UnsafePath, match="outside the root"):
        resolve_under(tree, str(tree.parent / "root-sibling" / "x.txt"), allow_absolute=True)


def test_a_root_given_through_a_symlink_works(tree: Path, tmp_path: Path) -> None:
    os.symlink(tree, tmp_path / "root-alias")
    assert resolve_under(tmp_path / "root-alias", "images/a.jpg") == tree / "images" / "a.jpg"
    with pytest.raises(UnsafePath):
        resolve_under(tmp_path / "root-alias", "escape-file")


def test_a_missing_root_is_an_error_not_a_pass(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        resolve_under(tmp_path / "nowhere", "a.txt")

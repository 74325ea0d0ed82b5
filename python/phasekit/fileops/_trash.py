"""Move files to the trash, list and restore them, per the freedesktop.org Trash spec 1.0."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias
from urllib.parse import quote_from_bytes, unquote_to_bytes

__all__ = ["TrashError", "TrashedItem", "home_trash_dir", "list_trash", "restore", "trash"]

StrPath: TypeAlias = "str | bytes | os.PathLike[str] | os.PathLike[bytes]"

_INFO_SUFFIX = b".trashinfo"
# RFC 2396 "mark" characters; quote_from_bytes already keeps ASCII letters,
# digits and "-_.~", and "/" must stay readable as the path separator.
_SAFE = "/!*'()"
# Past this many taken "name.N" slots, probing one by one would make trashing
# many same-named files quadratic: switch to random suffixes.
_LINEAR_TRIES = 20


class TrashError(OSError):
    """An item cannot be trashed or restored; the message says why and what to do."""

    def __init__(self, code: int, message: str, filename: bytes | None = None) -> None:
        if filename is None:
            super().__init__(code, message)
        else:
            super().__init__(code, message, filename)

    def __str__(self) -> str:
        # The message already names the path, readably; OSError's form would
        # append it again as a bytes repr.
        return str(self.strerror)


@dataclass(frozen=True, slots=True)
class TrashedItem:
    """One item in a trash folder."""

    #: Absolute path the item had before it was trashed.
    original: bytes
    #: Where it is now: ``<trash>/files/X``.
    trashed: bytes
    #: Its ``<trash>/info/X.trashinfo``.
    info: bytes
    #: Local time, no zone (as the spec stores it), to the second.
    deleted_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values: paths as ``str`` (surrogate-escaped if not UTF-8)."""
        return {
            "original": os.fsdecode(self.original),
            "trashed": os.fsdecode(self.trashed),
            "info": os.fsdecode(self.info),
            "deleted_at": self.deleted_at.isoformat(timespec="seconds"),
        }


def _show(path: bytes) -> str:
    return path.decode("utf-8", "backslashreplace")


def _within(path: bytes, folder: bytes) -> bool:
    return path == folder or path.startswith(folder.rstrip(b"/") + b"/")


def home_trash_dir() -> bytes:
    """``$XDG_DATA_HOME/Trash``, or ``~/.local/share/Trash`` (the "home trash")."""
    data_home = os.environb.get(b"XDG_DATA_HOME", b"")
    # The XDG base directory spec says to ignore a relative value.
    if not data_home.startswith(b"/"):
        data_home = os.path.join(os.path.expanduser(b"~"), b".local", b"share")
    return os.path.join(data_home, b"Trash")


def _split(path: StrPath) -> tuple[bytes, bytes]:
    """(real parent folder, name) of ``path``, the last part left unresolved."""
    raw = os.fsencode(path)
    if not raw:
        raise TrashError(errno.ENOENT, "an empty path names nothing to trash")
    head, name = os.path.split(raw.rstrip(b"/") or b"/")
    if name in (b"", b".", b".."):
        # "x/.." names a folder, never a link, so resolving it all is safe.
        head, name = os.path.split(os.path.realpath(raw))
    return os.path.realpath(head or b"."), name


def _topdir(folder: bytes, dev: int) -> bytes:
    """The top of the mount ``folder`` (a resolved path on device ``dev``) is on."""
    top = folder
    while top != b"/":
        up = os.path.dirname(top)
        if os.stat(up).st_dev != dev:
            break
        top = up
    return top


def _nearest_dev(path: bytes) -> int:
    while True:
        try:
            return os.stat(path).st_dev
        except FileNotFoundError:
            path = os.path.dirname(path)


def _real_dir(path: bytes, uid: int | None = None) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return stat.S_ISDIR(st.st_mode) and (uid is None or st.st_uid == uid)


def _make_dir(path: bytes) -> None:
    """Create a 0700 folder if missing; an existing one must be a real folder."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    if not _real_dir(path):
        raise TrashError(
            errno.ENOTDIR,
            f"{_show(path)} should be a folder of the trash but is not (a link or a file?); "
            "move it away or delete with --permanent instead",
            path,
        )


def _topdir_trash(top: bytes, uid: int) -> bytes:
    """The trash folder on the mount at ``top``, made if missing (spec cases 1 and 2)."""
    shared = os.path.join(top, b".Trash")
    try:
        st = os.lstat(shared)
    except FileNotFoundError:
        st = None
    # A shared .Trash that is a link or lacks the sticky bit could let other users
    # swap our folder: the spec says to ignore it (and fall back to .Trash-$uid).
    if st is not None and stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX:
        mine = os.path.join(shared, b"%d" % uid)
        with contextlib.suppress(OSError):
            if not os.path.lexists(mine):
                os.mkdir(mine, 0o700)
            if _real_dir(mine, uid):
                return mine
    own = os.path.join(top, b".Trash-%d" % uid)
    try:
        os.mkdir(own, 0o700)
    except FileExistsError:
        if not _real_dir(own, uid):
            raise TrashError(
                errno.EPERM,
                f"{_show(own)} is not a folder owned by user {uid} (a link?), so it cannot "
                "be trusted as a trash; remove it, or delete with --permanent instead",
                own,
            ) from None
    except OSError as e:
        raise TrashError(
            e.errno or errno.EACCES,
            f"no usable trash folder on the filesystem mounted at {_show(top)} (cannot create "
            f"{_show(own)}: {e.strerror}); delete with --permanent instead",
            own,
        ) from e
    return own


def _trash_dir_top(trash_dir: bytes) -> bytes:
    """The folder relative ``Path=`` values in ``trash_dir`` start from."""
    up = os.path.dirname(trash_dir)
    if os.path.basename(up) == b".Trash" and os.path.basename(trash_dir).isdigit():
        return os.path.dirname(up)
    return up


def _encode_info(path: bytes, when: datetime) -> bytes:
    return b"[Trash Info]\nPath=%s\nDeletionDate=%s\n" % (
        quote_from_bytes(path, safe=_SAFE).encode("ascii"),
        when.isoformat(timespec="seconds").encode("ascii"),
    )


def _candidates(name: bytes, limit: int) -> Iterator[bytes]:
    """Trash names for ``name``: itself, ``name.2``, ``name.3``..., all within ``limit``."""

    def fit(suffix: bytes) -> bytes:
        room = limit - len(suffix)
        if len(name) <= room:
            return name + suffix
        cut = name[:room]
        with contextlib.suppress(UnicodeDecodeError):
            # Keep a UTF-8 name valid UTF-8: drop a character cut in half.
            name.decode("utf-8")
            cut = cut.decode("utf-8", "ignore").encode("utf-8")
        return cut + suffix

    yield fit(b"")
    for n in range(2, _LINEAR_TRIES + 2):
        yield fit(b".%d" % n)
    while True:
        yield fit(b"." + secrets.token_hex(6).encode("ascii"))


def _reserve(trash_dir: bytes, name: bytes, content: bytes) -> tuple[bytes, bytes]:
    """Create ``info/X.trashinfo`` for a free ``X``; returns (files/X, info path)."""
    info_dir = os.path.join(trash_dir, b"info")
    files_dir = os.path.join(trash_dir, b"files")
    try:
        limit = os.pathconf(info_dir, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = -1
    if limit <= len(_INFO_SUFFIX) + 16:  # unknown, or too small to be true
        limit = 255
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for candidate in _candidates(name, limit - len(_INFO_SUFFIX)):
        info = os.path.join(info_dir, candidate + _INFO_SUFFIX)
        try:
            fd = os.open(info, flags, 0o600)
        except FileExistsError:
            continue
        target = os.path.join(files_dir, candidate)
        try:
            # O_EXCL on the info file is the spec's lock; a files/ entry left
            # without its info (a crash, another tool) must not be overwritten.
            if os.path.lexists(target):
                os.close(fd)
                os.unlink(info)
                continue
            data = content
            while data:
                data = data[os.write(fd, data) :]
            os.close(fd)
        except BaseException:
            # Leave no info file naming an item that never got to files/.
            with contextlib.suppress(OSError):
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(info)
            raise
        return target, info
    raise AssertionError("unreachable: the candidate names never run out")


def trash(path: StrPath, *, home_trash: StrPath | None = None) -> TrashedItem:
    """Move one file, folder or symlink (never its target) to the right trash.

    The home trash if ``path`` is on its filesystem, else the trash at the top of
    ``path``'s mount. It is one rename, never a copy: a :class:`TrashError` says
    when that cannot be done (the caller may then offer to delete permanently).
    """
    folder, name = _split(path)
    full = os.path.join(folder, name)
    if full == b"/":
        raise TrashError(errno.EINVAL, "refusing to trash the root folder /", full)
    try:
        st = os.lstat(full)
        parent = os.stat(folder)
    except OSError as e:
        raise TrashError(
            e.errno or errno.ENOENT, f"cannot trash {_show(full)}: {e.strerror}", full
        ) from e
    if stat.S_ISDIR(st.st_mode) and (st.st_dev != parent.st_dev or st.st_ino == parent.st_ino):
        raise TrashError(
            errno.EBUSY,
            f"refusing to trash {_show(full)}: it is the top folder of a mounted filesystem",
            full,
        )
    top = _topdir(folder, st.st_dev)
    first = full[len(top) :].lstrip(b"/").split(b"/", 1)[0]
    home = os.path.realpath(home_trash_dir() if home_trash is None else os.fsencode(home_trash))
    if (
        first == b".Trash"
        or (first.startswith(b".Trash-") and first[7:].isdigit())
        or _within(full, home)
    ):
        raise TrashError(
            errno.EINVAL, f"refusing to trash {_show(full)}: it is (inside) a trash folder", full
        )
    if _within(home, full):
        raise TrashError(
            errno.EINVAL,
            f"refusing to trash {_show(full)}: it contains the trash folder {_show(home)}",
            full,
        )

    uid = os.geteuid()
    if _nearest_dev(home) == st.st_dev:
        trash_dir, recorded = home, full
        try:
            os.makedirs(home, 0o700, exist_ok=True)
        except OSError as e:
            raise TrashError(
                e.errno or errno.EACCES,
                f"cannot create the trash folder {_show(home)}: {e.strerror}",
                home,
            ) from e
    else:
        trash_dir = _topdir_trash(top, uid)
        # The spec recommends paths relative to $topdir there: they stay right
        # when the filesystem is mounted elsewhere.
        recorded = full[len(top) :].lstrip(b"/")
    _make_dir(os.path.join(trash_dir, b"files"))
    _make_dir(os.path.join(trash_dir, b"info"))

    when = datetime.now().replace(microsecond=0)
    target, info = _reserve(trash_dir, name, _encode_info(recorded, when))
    try:
        os.rename(full, target)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(info)
        if e.errno == errno.EXDEV:
            message = (
                f"cannot trash {_show(full)}: its trash folder {_show(trash_dir)} is on another "
                "filesystem (a bind mount?) and trashing never copies; "
                "delete it with --permanent instead"
            )
        else:
            message = f"cannot move {_show(full)} into the trash {_show(trash_dir)}: {e.strerror}"
        raise TrashError(e.errno or errno.EIO, message, full) from e
    return TrashedItem(full, target, info, when)


def _read_info(info: bytes) -> TrashedItem:
    """Parse one ``.trashinfo``; TrashError (EINVAL) if it is malformed."""
    trash_dir = os.path.dirname(os.path.dirname(info))
    name = os.path.basename(info)
    if not name.endswith(_INFO_SUFFIX):
        raise TrashError(errno.EINVAL, f"{_show(info)} is not a .trashinfo file", info)
    with open(info, "rb") as f:
        lines = f.read().split(b"\n")
    values: dict[bytes, bytes] = {}
    group = None
    for line in lines:
        line = line.rstrip(b"\r")
        if line.startswith(b"["):
            group = line
        elif group == b"[Trash Info]" and b"=" in line and not line.startswith(b"#"):
            key, _, value = line.partition(b"=")
            values.setdefault(key.strip(), value.strip())
    try:
        original = unquote_to_bytes(values[b"Path"])
        deleted_at = datetime.fromisoformat(values[b"DeletionDate"].decode("ascii"))
    except (KeyError, ValueError) as e:
        raise TrashError(errno.EINVAL, f"{_show(info)} is malformed ({e!r})", info) from e
    parts = original.split(b"/")
    if not original or b"\0" in original or (not original.startswith(b"/") and b".." in parts):
        raise TrashError(errno.EINVAL, f"{_show(info)} has an unsafe Path", info)
    if not original.startswith(b"/"):
        original = os.path.join(_trash_dir_top(trash_dir), original)
    trashed = os.path.join(trash_dir, b"files", name[: -len(_INFO_SUFFIX)])
    return TrashedItem(original, trashed, info, deleted_at)


def list_trash(trash_dir: StrPath) -> list[TrashedItem]:
    """The items in a trash folder (one holding ``files/`` and ``info/``), oldest first.

    Unreadable or malformed ``.trashinfo`` files are skipped, as other trash
    implementations do; a missing ``info/`` means an empty trash.
    """
    info_dir = os.path.join(os.fsencode(trash_dir), b"info")
    items: list[TrashedItem] = []
    try:
        entries = list(os.scandir(info_dir))
    except FileNotFoundError:
        return items
    for entry in entries:
        if entry.name.endswith(_INFO_SUFFIX) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(OSError):
                items.append(_read_info(entry.path))
    items.sort(key=lambda item: (item.deleted_at, item.info))
    return items


def restore(item_or_info_path: TrashedItem | StrPath) -> bytes:
    """Move a trashed item back where it was and drop its ``.trashinfo``.

    Takes a :class:`TrashedItem` or the path of its ``.trashinfo``; returns the
    restored path. Refuses (TrashError, EEXIST) if something is there now.
    """
    if isinstance(item_or_info_path, TrashedItem):
        item = item_or_info_path
    else:
        item = _read_info(os.fsencode(item_or_info_path))
    if not os.path.lexists(item.trashed):
        raise TrashError(
            errno.ENOENT,
            f"cannot restore {_show(item.original)}: {_show(item.trashed)} is gone from the trash",
            item.trashed,
        )
    # A small race remains (rename has no portable no-replace flag), but this
    # check keeps restore from silently replacing what was put there since.
    if os.path.lexists(item.original):
        raise TrashError(
            errno.EEXIST,
            f"cannot restore {_show(item.original)}: something else is there now; "
            "move it away first",
            item.original,
        )
    try:
        os.rename(item.trashed, item.original)
    except OSError as e:
        message = f"cannot restore {_show(item.original)} from the trash: {e.strerror}"
        if e.errno == errno.ENOENT:
            message += "; create its folder again first"
        raise TrashError(e.errno or errno.EIO, message, item.original) from e
    with contextlib.suppress(FileNotFoundError):
        os.unlink(item.info)
    return item.original

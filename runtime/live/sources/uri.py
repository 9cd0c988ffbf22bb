"""Source URIs as jetson-utils users write them: `scheme://ADDRESS?option=value&…`, or a bare path or number.

`realsense://123456?fps=15` has the scheme `realsense`, the address `123456` and the option fps=15;
`file://data/rec.db3` the address `data/rec.db3` (relative) and `file:///tmp/rec.db3` `/tmp/rec.db3`;
`v4l2:///dev/video0` the address `/dev/video0`. The address is the URI's host and path together,
percent-decoded (`mic://USB%20Audio` names the device "USB Audio"), so a path with `?`, `#` or `%`
in it is written with `%3F`, `%23`, `%25` (`build_uri` does that). A bare text (`rec.db3`, `0`,
`/dev/video0`) has no scheme and no options: its address is the text as given.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath
from urllib.parse import quote, unquote, urlsplit

from mke.runtime.errors import MkeError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class SourceURI:
    text: str                             # as the user wrote it
    scheme: str | None                    # lower case; None for a bare path or device number
    address: str                          # host + path, percent-decoded; the text itself when bare
    query: tuple[tuple[str, str], ...] = ()   # (option, value) pairs in the order given, values decoded

    @property
    def suffix(self) -> str:
        """The address's file suffix in lower case ('.db3'), '' when it has none."""
        return PurePath(self.address).suffix.lower() if self.address else ""

    def __str__(self) -> str:
        return self.text


def parse_uri(text: str) -> SourceURI:
    text = str(text).strip()
    if not text:
        raise MkeError("an empty source: give a URI such as realsense://, file://REC.db3 or sim:// "
                       "(mke-live --list-inputs lists them)")
    match = _SCHEME.match(text)
    if not match:
        return SourceURI(text, None, text)
    try:
        parts = urlsplit(text, allow_fragments=False)
    except ValueError as exc:
        raise MkeError(f"{text} is not a readable URI ({exc})") from None
    query = []
    for part in filter(None, parts.query.split("&")):
        key, _, value = part.partition("=")
        query.append((unquote(key).strip(), unquote(value)))
    return SourceURI(text, match.group(1).lower(), unquote(parts.netloc + parts.path), tuple(query))


def build_uri(scheme: str, address: str | PurePath = "", **options) -> str:
    """`scheme://address?k=v&…` with the address and values percent-encoded where they must be; options
    whose value is None are left out, booleans are written 1 / 0."""
    text = f"{scheme}://{quote(str(address), safe='/:@~!$()*,;=+-._')}"
    pairs = [f"{k}={quote(str(int(v) if isinstance(v, bool) else v), safe='/:@~!$()*,;=+-._')}"
             for k, v in options.items() if v is not None]
    return text + ("?" + "&".join(pairs) if pairs else "")

"""A careful HTTP GET: http(s) only, vetted addresses, hand-followed redirects, a byte cap.

Used by the fetch stage for article pages and by the slides stage for article images.

Why we resolve names ourselves (DNS rebinding): checking a host name's addresses and then letting
the HTTP library resolve it again leaves a window in which a hostile DNS server can answer with a
public address for the check and ``127.0.0.1`` for the connection. So every hop is resolved once
with ``getaddrinfo``, *all* of its addresses must pass the check (a mixed answer is refused), and
the request is sent to the vetted IP itself: the URL's host is replaced by the IP, the ``Host``
header keeps the name, and for HTTPS the TLS SNI / certificate check keep the name too
(httpcore's ``sni_hostname`` extension). Nothing is ever sent to an address we did not vet.
Environment proxies are ignored (``trust_env=False``) for the same reason.

Every wait is bounded: ``fetch.total_timeout`` covers the whole download, redirects included,
however the server paces its bytes, and the job's cancel token ends it too. Both hang up the
connection from outside (:class:`stages.netwait.Hangup`), so a thread blocked in a read is freed
at once instead of at the next chunk or the stage timeout.
"""

from __future__ import annotations

import email.utils
import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

import httpx

from stages.base import Cancelled, InputError, Progress, TransientError
from stages.netwait import Hangup

if TYPE_CHECKING:
    from stages.settings import FetchSettings, Settings

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# Ranges ipaddress does not flag as non-global on every Python version we support.
_EXTRA_BLOCKED = tuple(
    ipaddress.ip_network(net)
    for net in (
        "100.64.0.0/10",  # carrier-grade NAT
        "192.0.0.0/24",  # IETF protocol assignments
        "198.18.0.0/15",  # benchmarking
        "fc00::/7",  # unique local
        "fec0::/10",  # site-local (deprecated)
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class FetchedBody:
    """A fetched response body.

    Attributes:
        content: the (decompressed) body bytes, at most ``max_bytes``.
        content_type: the media type, lower case, without parameters ("" when absent).
        charset: the ``charset`` parameter of Content-Type, when the server sent one.
        final_url: the URL after redirects.
        status: the final HTTP status.
    """

    content: bytes
    content_type: str
    charset: str | None
    final_url: str
    status: int


def get_bytes(
    url: str,
    settings: "Settings | FetchSettings",
    *,
    max_bytes: int,
    accept: Callable[[str], bool] | None = None,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
) -> FetchedBody:
    """GET ``url`` safely and return its body.

    Args:
        url: an http(s) URL.
        settings: the settings tree (its ``fetch`` section is used) or a ``FetchSettings``.
        max_bytes: abort with an InputError once the body exceeds this many bytes.
        accept: called with the media type before the body is read; False → InputError naming it.
        cancel: the job's token; setting it hangs up the connection at once.
        progress: ``progress(bytes_read, expected_total_or_0, message)`` while downloading.

    Raises:
        InputError: bad URL or scheme, refused address, 4xx, too many redirects or a loop,
            unaccepted content type, body over the cap.
        TransientError: timeouts (``fetch.total_timeout`` for the whole download), connection
            errors, 429 (``retry_after`` from Retry-After), 5xx.
        Cancelled: ``cancel`` was set.
    """
    fetch = getattr(settings, "fetch", settings)
    deadline = time.monotonic() + fetch.total_timeout
    timeout = httpx.Timeout(
        connect=fetch.connect_timeout, read=fetch.read_timeout, write=fetch.read_timeout, pool=fetch.connect_timeout
    )
    headers = {"User-Agent": fetch.user_agent, "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    seen: list[str] = []
    current = _parse_url(url)
    hangup = Hangup()
    with (
        hangup.watch(cancel, deadline),
        httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, headers=headers) as client,
    ):
        while True:
            _check(cancel, deadline, fetch)
            seen.append(str(current))
            try:
                response_or_redirect = _one_hop(client, current, fetch, max_bytes, accept, cancel, deadline, progress,
                                                hangup)
            except (TransientError, InputError) as exc:
                # A hung-up connection surfaces as a network error (or, for a body that ends at the
                # close, as a short body): say what really happened.
                _raise_if_hung_up(hangup, fetch, exc)
                raise
            _raise_if_hung_up(hangup, fetch, None)
            if isinstance(response_or_redirect, FetchedBody):
                return response_or_redirect
            target = _parse_url(str(current.join(response_or_redirect)))
            if str(target) in seen:
                raise InputError(f"redirect loop: {target} was already visited (from {url})")
            if len(seen) > fetch.max_redirects:
                raise InputError(f"too many redirects (more than {fetch.max_redirects}) starting at {url}")
            current = target


def is_public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for a globally routable unicast address (not private, loopback, link-local, ...)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(embedded)
    if (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    ):
        return False
    return not any(ip.version == net.version and ip in net for net in _EXTRA_BLOCKED)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


# --- one hop ----------------------------------------------------------------------------------


def _one_hop(
    client: httpx.Client,
    url: httpx.URL,
    fetch: "FetchSettings",
    max_bytes: int,
    accept: Callable[[str], bool] | None,
    cancel: threading.Event | None,
    deadline: float,
    progress: Progress | None,
    hangup: Hangup,
) -> FetchedBody | str:
    """Request ``url``; return the body, or the Location of a redirect."""
    host = url.raw_host.decode("ascii")
    addresses = _vetted_addresses(host, url.port or (443 if url.scheme == "https" else 80), fetch)
    last_error: Exception | None = None
    for address in addresses:
        _check(cancel, deadline, fetch)
        request = client.build_request(
            "GET",
            url.copy_with(host=address),
            headers={"Host": url.netloc.decode("ascii")},
            extensions={**hangup.extensions, **({"sni_hostname": host} if url.scheme == "https" else {})},
        )
        try:
            response = client.send(request, stream=True)
        except httpx.ConnectError as exc:  # try the next vetted address
            last_error = exc
            continue
        except httpx.TimeoutException as exc:
            raise TransientError(f"timed out connecting to {url.host}: {exc}") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"network error fetching {url}: {exc}") from exc
        try:
            return _handle_response(response, url, max_bytes, accept, cancel, deadline, fetch, progress)
        finally:
            response.close()
    raise TransientError(f"could not connect to {url.host}: {last_error}")


def _handle_response(
    response: httpx.Response,
    url: httpx.URL,
    max_bytes: int,
    accept: Callable[[str], bool] | None,
    cancel: threading.Event | None,
    deadline: float,
    fetch: "FetchSettings",
    progress: Progress | None,
) -> FetchedBody | str:
    status = response.status_code
    if status in REDIRECT_STATUSES:
        location = response.headers.get("location")
        if not location:
            raise InputError(f"{url} answered {status} without a Location header")
        return location
    if status == 429 or status == 503:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise TransientError(f"{url} answered {status} ({response.reason_phrase})", retry_after=retry_after)
    if status >= 500 or status == 408:
        raise TransientError(f"{url} answered {status} ({response.reason_phrase})")
    if status >= 400:
        raise InputError(f"{url} answered {status} ({response.reason_phrase}): check the address")
    if not 200 <= status < 300:
        raise InputError(f"{url} answered an unexpected status {status}")

    media_type, charset = _content_type(response.headers.get("content-type", ""))
    if accept is not None and not accept(media_type):
        raise InputError(f"{url} is {media_type or 'of no stated type'}, which is not accepted here")
    declared = response.headers.get("content-length", "")
    expected = int(declared) if declared.isdigit() else 0
    if expected > max_bytes:
        raise InputError(f"{url} is {expected} bytes, over the limit of {max_bytes} bytes")
    content = _read_capped(response, url, max_bytes, expected, cancel, deadline, fetch, progress)
    return FetchedBody(content=content, content_type=media_type, charset=charset, final_url=str(url), status=status)


def _read_capped(
    response: httpx.Response,
    url: httpx.URL,
    max_bytes: int,
    expected: int,
    cancel: threading.Event | None,
    deadline: float,
    fetch: "FetchSettings",
    progress: Progress | None,
) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        # Chunks as they arrive (no re-chunking to 64 KB), so the cap and the checks see every byte.
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise InputError(f"{url} is larger than the limit of {max_bytes} bytes")
            chunks.append(chunk)
            if progress is not None:
                progress(size, expected, "downloading")
            _check(cancel, deadline, fetch)
    except httpx.TimeoutException as exc:
        raise TransientError(f"timed out reading {url}: {exc}") from exc
    except httpx.TransportError as exc:
        raise TransientError(f"network error reading {url}: {exc}") from exc
    except httpx.DecodingError as exc:
        raise InputError(f"{url} sent a body that could not be decompressed: {exc}") from exc
    return b"".join(chunks)


# --- checks -----------------------------------------------------------------------------------


def _parse_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise InputError(f"not a valid URL: {url!r} ({exc})") from exc
    if parsed.scheme not in ("http", "https"):
        raise InputError(f"only http and https URLs can be fetched, not {parsed.scheme or 'a bare path'}: {url}")
    if not parsed.host:
        raise InputError(f"the URL has no host: {url}")
    return parsed


def _vetted_addresses(host: str, port: int, fetch: "FetchSettings") -> list[str]:
    """The addresses of ``host`` we may connect to, in resolver order; refuses if any is private."""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        infos = [str(literal)]
    else:
        try:
            resolved = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
                raise InputError(f"the host {host} does not exist ({exc.strerror})") from exc
            raise TransientError(f"could not resolve {host}: {exc.strerror}") from exc
        infos = []
        for *_, sockaddr in resolved:
            address = str(sockaddr[0]).split("%", 1)[0]
            if address not in infos:
                infos.append(address)
    if not infos:
        raise TransientError(f"{host} resolved to no address")
    if fetch.allow_private or _host_allowed(host, fetch):
        return infos
    for address in infos:
        ip = ipaddress.ip_address(address)
        if not is_public_address(ip) and not _network_allowed(ip, fetch):
            raise InputError(
                f"refusing to connect to {host} ({address}): a private, loopback, link-local or otherwise "
                "non-public address (set fetch.allow_private = true to allow it)"
            )
    return infos


def _host_allowed(host: str, fetch: "FetchSettings") -> bool:
    return host.lower().rstrip(".") in {h.lower().rstrip(".") for h in getattr(fetch, "allow_hosts", [])}


def _network_allowed(ip: Any, fetch: "FetchSettings") -> bool:
    for entry in getattr(fetch, "allow_hosts", []):
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if network.version == ip.version and ip in network:
            return True
    return False


def _check(cancel: threading.Event | None, deadline: float, fetch: "FetchSettings") -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("fetch cancelled")
    if time.monotonic() > deadline:
        raise _too_slow(fetch)


def _too_slow(fetch: "FetchSettings") -> TransientError:
    return TransientError(f"the download took longer than fetch.total_timeout = {fetch.total_timeout:g} s")


def _raise_if_hung_up(hangup: Hangup, fetch: "FetchSettings", cause: Exception | None) -> None:
    if hangup.cancelled:
        raise Cancelled("fetch cancelled") from cause
    if hangup.expired:
        raise _too_slow(fetch) from cause


def _content_type(header: str) -> tuple[str, str | None]:
    media_type, _, params = header.partition(";")
    charset = None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip("\"'").lower()
    return media_type.strip().lower(), charset

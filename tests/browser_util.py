"""Helpers to drive the dashboard in a real browser (Debian's chromium through Playwright).

Used by tests/test_browser.py and reusable by bench scripts (cold/warm start timing)::

    with StreamlitServer(home=tmp) as srv, browser() as b:
        page = b.new_page(viewport=PROJECTOR)
        open_page(page, srv.url)
        assert_no_exception(page)
        screenshot(page, "artifacts/screenshots/home.png")
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
PROJECTOR = {"width": 1280, "height": 720}
LAPTOP = {"width": 1440, "height": 900}
SCREENSHOTS = ROOT / "artifacts" / "screenshots"


def missing_requirements() -> str | None:
    """Why the browser cannot run here (for a pytest skip reason), or None."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not found: run scripts/setup.sh dev (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: pip install -r requirements-dev.txt"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def streamlit_exe() -> list[str]:
    """The streamlit command of the running interpreter's environment."""
    exe = Path(sys.executable).with_name("streamlit")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "streamlit"]


class StreamlitServer:
    """``streamlit run app.py`` on a free localhost port, with its own TLVIZ_HOME.

    ``home`` defaults to a fresh temporary directory; ``TLVIZ_DATA_DIR`` and the rest of
    the environment are passed through (``env`` adds or overrides variables). The server
    log goes to ``log_path`` (``<home>/streamlit.log``) for post-mortems.
    """

    def __init__(self, app: str = "app.py", *, home: str | os.PathLike | None = None,
                 env: dict[str, str] | None = None, port: int | None = None):
        self.app = app
        self.home = Path(home) if home else Path(tempfile.mkdtemp(prefix="tlviz-browser-home-"))
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = env or {}
        self.proc: subprocess.Popen | None = None
        self.log_path = self.home / "streamlit.log"
        self.started_at = 0.0

    def start(self, timeout: float = 90.0) -> StreamlitServer:
        env = {**os.environ, "TLVIZ_HOME": str(self.home), "OMP_NUM_THREADS": "2",
               "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", **self.extra_env}
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(
            [*streamlit_exe(), "run", self.app, "--server.port", str(self.port),
             "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float) -> float:
        """Block until /_stcore/health answers ok; returns the seconds since start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited ({self.proc.returncode}):\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200 and r.read().strip() == b"ok":
                        return time.perf_counter() - self.started_at
            except OSError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"streamlit not healthy after {timeout:.0f}s:\n{self.log()}")

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Terminate the server process group we started (and only that)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def __enter__(self) -> StreamlitServer:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def browser() -> Iterator:
    """A headless Debian chromium driven by Playwright (no Playwright browser download)."""
    with browser_with_args([]) as b:
        yield b


@contextlib.contextmanager
def browser_with_args(args: list[str]) -> Iterator:
    """:func:`browser` with extra Chromium flags (e.g. a fake camera)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *args])
        try:
            yield b
        finally:
            b.close()


def wait_idle(page, timeout: float = 120.0, settle: float = 0.6) -> None:
    """Wait until the script is not running and the page stays so for ``settle`` seconds."""
    deadline = time.monotonic() + timeout
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout * 1000)
    quiet_since = None
    while time.monotonic() < deadline:
        state = page.evaluate(
            """() => {
                const app = document.querySelector('[data-testid="stApp"]');
                const running = document.querySelector('[data-testid="stStatusWidget"]');
                const skeleton = document.querySelector('[data-testid="stAppSkeleton"]');
                return {script: app && app.getAttribute('data-test-script-state'),
                        conn: app && app.getAttribute('data-test-connection-state'),
                        busy: !!(running && running.innerText.match(/Running|Connecting/i)),
                        skeleton: !!skeleton};
            }""")
        idle = (state["script"] in ("notRunning", "initial") and not state["busy"]
                and not state["skeleton"] and state["conn"] == "CONNECTED")
        if idle:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= settle:
                return
        else:
            quiet_since = None
        page.wait_for_timeout(150)
    raise TimeoutError(f"page still busy after {timeout:.0f}s: {page.url}")


def exception_text(page) -> str | None:
    """The text of the first Streamlit exception box on the page, or None."""
    box = page.query_selector('[data-testid="stException"]')
    return box.inner_text() if box else None


def assert_no_exception(page, where: str = "") -> None:
    text = exception_text(page)
    assert text is None, f"exception box on {where or page.url}:\n{text}"


def open_page(page, url: str, timeout: float = 120.0) -> None:
    """Navigate and wait until Streamlit is idle."""
    page.goto(url, wait_until="domcontentloaded", timeout=timeout * 1000)
    wait_idle(page, timeout)


def screenshot(page, path: str | os.PathLike, full_page: bool = False) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=full_page)
    return path


# Streamlit's frontend asks Google's font CDN for some Material icons' SVGs and falls back
# to its bundled icon font when that fails (the icons show offline: see the screenshots).
ICON_CDN = "https://fonts.gstatic.com/s/i/"


def block_other_hosts(page, base: str, blocked: list[str] | None = None) -> list[str]:
    """Abort every request that is not for the app at ``base`` (proof that a page works
    offline); returns the list (``blocked``, or a new one) the blocked URLs are appended
    to (Streamlit's own icon look-ups left out)."""
    blocked = [] if blocked is None else blocked

    def route(r):
        url = r.request.url
        if url.startswith(base) or url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            if not url.startswith(ICON_CDN):
                blocked.append(url)
            r.abort()

    page.route("**/*", route)
    return blocked


def page_urls(base_url: str) -> dict[str, str]:
    """Title -> URL of every page app.py declares (``ui/nav.py``), in menu order
    (``"Embedding space"``: ``/Embedding_space``; Home: ``/``)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from ui.nav import PAGES

    return {p.title: f"{base_url}/{p.url_path}" for p in PAGES}

"""Slides with images: article images over real HTTP, their fallbacks, and the image-generation backend."""

from __future__ import annotations

import io
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import threading
from typing import Any, Iterator

import pytest
from PIL import Image, ImageDraw

from stages.settings import load_settings
from stages.slides import generate_slides
from stages.slides.image_api import ImageApiError, generate_image
from stages.slides.typeset import fit_image
from tests.doubles.image_api import ImageApiDouble
from tests.test_slides import Notes, assert_clear_of_safe_areas, make_job, script_data


def png_bytes(size: tuple[int, int] = (400, 300), colour: tuple[int, int, int] = (220, 90, 40)) -> bytes:
    image = Image.new("RGB", size, colour)
    ImageDraw.Draw(image).ellipse([size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4], fill=(30, 200, 120))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


ROUTES: dict[str, tuple[int, str, bytes]] = {
    "/photo.png": (200, "image/png", png_bytes()),
    "/broken.png": (200, "image/png", png_bytes()[:200]),
    "/page.jpg": (200, "text/html; charset=utf-8", b"<!doctype html><html><body><h1>Not an image</h1></body></html>"),
    "/disguised.png": (200, "image/png", b"<!doctype html><html><body>HTML with an image type</body></html>"),
    "/tiny.png": (200, "image/png", png_bytes((20, 20))),
}


@pytest.fixture
def image_server() -> Iterator[dict[str, Any]]:
    """A real HTTP server on 127.0.0.1 serving the routes above (404 for anything else)."""
    hits: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            hits[self.path] = hits.get(self.path, 0) + 1
            status, ctype, body = ROUTES.get(self.path, (404, "text/html", b"<h1>404 Not Found</h1>"))
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{server.server_address[1]}", "hits": hits}
    finally:
        server.shutdown()
        server.server_close()


def settings_for(tmp_path: Path, size: tuple[int, int] = (320, 180), **overrides: Any):
    return load_settings(home=tmp_path / "home", video={"width": size[0], "height": size[1]},
                         fetch={"allow_private": True}, **overrides)


def with_images(images: list[str], caption_last: bool = False) -> dict[str, Any]:
    """A script whose middle sections carry the given images."""
    data = script_data("ja", 1)
    middle = [{"title": f"画像{i}", "narrations": ["画像のセクションなのだ。"], "source_image_url": url}
              for i, url in enumerate(images)]
    if caption_last and middle:
        middle[-1]["slide"] = {"image": images[-1], "caption": "図：WALの流れ", "layout": "image_caption"}
    data["sections"] = data["sections"][:1] + middle + data["sections"][-1:]
    return data


def run(job: Path, settings, tmp_path: Path) -> tuple[dict[str, Any], Notes]:
    notes = Notes()
    path = generate_slides(job / "script.yaml", job, settings, cache_dir=tmp_path / "cache", note=notes)
    return json.loads(path.read_text("utf-8")), notes


def test_article_image_is_downloaded_and_placed(tmp_path: Path, image_server):
    """A reachable image gives the heading + image layout, inside the safe areas, downloaded once."""
    settings = settings_for(tmp_path)
    url = image_server["url"] + "/photo.png"
    job = make_job(tmp_path, with_images([url, url], caption_last=True))
    index, notes = run(job, settings, tmp_path)
    assert [s["layout"] for s in index["slides"]] == ["title", "image", "image_caption", "closing"]
    assert not notes.named("image fallback")
    image_box = next(b for b in index["slides"][1]["boxes"] if b["kind"] == "image")["box"]
    assert image_box[2] - image_box[0] > 40 and image_box[3] - image_box[1] > 30
    caption = next(b for b in index["slides"][2]["boxes"] if b["kind"] == "caption")
    assert caption["lines"] == ["図：WALの流れ"]
    assert_clear_of_safe_areas(index)
    run(job, settings, tmp_path)
    assert image_server["hits"]["/photo.png"] == 1  # cached by URL hash


@pytest.mark.parametrize(
    "route, reason",
    [
        ("/missing.png", "404"),
        ("/broken.png", "not a readable image"),
        ("/page.jpg", "text/html"),
        ("/disguised.png", "not a readable image"),
        ("/tiny.png", "smaller than"),
    ],
)
def test_failed_image_falls_back_to_text_layout(tmp_path: Path, image_server, route: str, reason: str):
    """Missing, broken, HTML and too-small images fall back to a real text slide with a note saying why."""
    settings = settings_for(tmp_path)
    job = make_job(tmp_path, with_images([image_server["url"] + route]))
    index, notes = run(job, settings, tmp_path)
    slide = index["slides"][1]
    assert slide["layout"] == "bullets"
    assert not any(b["kind"] == "image" for b in slide["boxes"])
    assert any(b["kind"] == "heading" for b in slide["boxes"])
    assert Path(slide["path"]).stat().st_size > 1000
    fallbacks = notes.named("image fallback")
    assert len(fallbacks) == 1 and fallbacks[0]["section"] == 1
    assert reason in fallbacks[0]["reason"]


def test_local_image_paths_inside_the_job_only(tmp_path: Path):
    """A relative path inside the job folder is used; a path escaping it (and the home) is refused."""
    settings = settings_for(tmp_path)
    outside = tmp_path / "outside.png"
    outside.write_bytes(png_bytes())
    job = make_job(tmp_path, with_images(["pics/inside.png", "../outside.png", str(outside)]))
    (job / "pics").mkdir()
    (job / "pics" / "inside.png").write_bytes(png_bytes())
    index, notes = run(job, settings, tmp_path)
    assert [s["layout"] for s in index["slides"][1:4]] == ["image", "bullets", "bullets"]
    reasons = [n["reason"] for n in notes.named("image fallback")]
    assert len(reasons) == 2 and all("outside the job folder" in r for r in reasons)


def test_fit_never_upscales_beyond_twice(tmp_path: Path):
    """Cover and contain scale to the box, but a small image is enlarged at most 2x."""
    small = Image.new("RGB", (100, 50))
    assert fit_image(small, (1000, 1000), "contain").size == (200, 100)
    assert fit_image(small, (1000, 1000), "cover").size == (200, 100)
    big = Image.new("RGB", (1000, 500))
    assert fit_image(big, (300, 300), "contain").size == (300, 150)
    assert fit_image(big, (300, 300), "cover").size == (300, 300)


def test_decompression_bomb_is_refused(tmp_path: Path):
    """An image declaring a huge pixel count is refused before it is decoded."""
    bomb = tmp_path / "home" / "bomb.png"
    bomb.parent.mkdir(parents=True)
    Image.new("1", (8000, 6000)).save(bomb, optimize=True)
    settings = settings_for(tmp_path)
    job = make_job(tmp_path, with_images([str(bomb)]))
    index, notes = run(job, settings, tmp_path)
    assert index["slides"][1]["layout"] == "bullets"
    assert "over the limit" in notes.named("image fallback")[0]["reason"]


# --- the image-generation backend ------------------------------------------------------------


def api_settings(tmp_path: Path, api: ImageApiDouble, form: str = "chat", **extra: Any):
    return settings_for(tmp_path, slides={"backend": "image-api", "image_api": {
        "base_url": api.base_url, "model": api.model, "api_key": api.api_key, "form": form,
        "retry_base_seconds": 0, **extra}})


def prompted(language: str = "ja") -> dict[str, Any]:
    data = script_data(language, 1)
    data["sections"][1]["slide_prompt"] = "A diagram of a write-ahead log"
    return data


@pytest.mark.parametrize("form", ["chat", "images"])
def test_generated_slide_fills_the_frame(tmp_path: Path, form: str):
    """Both request forms give a full-frame PNG; the prompt states the on-slide language; reruns reuse it."""
    with ImageApiDouble() as api:
        settings = api_settings(tmp_path, api, form)
        job = make_job(tmp_path, prompted("ja"))
        index, notes = run(job, settings, tmp_path)
        slide = index["slides"][1]
        assert slide["layout"] == "generated"
        with Image.open(slide["path"]) as im:
            assert im.size == (320, 180)
        assert [s["layout"] for s in index["slides"]] == ["title", "generated", "bullets", "closing"]
        path, headers, body = api.requests[0]
        assert path == ("/v1/chat/completions" if form == "chat" else "/v1/images/generations")
        prompt = body["messages"][0]["content"] if form == "chat" else body["prompt"]
        assert "A diagram of a write-ahead log" in prompt and "Japanese" in prompt
        if form == "chat":
            assert body["modalities"] == ["image", "text"]
        assert len(api.requests) == 1
        again, _ = run(job, settings, tmp_path)
        assert len(api.requests) == 1 and again["slides"][1]["path"] == slide["path"]


def test_rate_limit_is_retried(tmp_path: Path):
    """Two 429s with Retry-After, then success: three requests, a generated slide."""
    with ImageApiDouble() as api:
        api.fail_times = 2
        settings = api_settings(tmp_path, api, attempts=3)
        job = make_job(tmp_path, prompted())
        index, notes = run(job, settings, tmp_path)
        assert len(api.requests) == 3
        assert index["slides"][1]["layout"] == "generated"
        assert not notes.named("image generation failed")


@pytest.mark.parametrize("scenario, status", [("ok", 500), ("ok", 401), ("no_image", 0), ("not_an_image", 0),
                                              ("bad_base64", 0)])
def test_failed_generation_falls_back_to_typeset(tmp_path: Path, scenario: str, status: int):
    """Server errors, refusals and unusable answers give a typeset slide, a note without the key, no leftovers."""
    with ImageApiDouble() as api:
        api.scenario = scenario
        if status:
            api.fail_times, api.fail_status = 100, status
        settings = api_settings(tmp_path, api, attempts=2)
        if status == 401:
            settings.slides.image_api.api_key = None
        job = make_job(tmp_path, prompted())
        index, notes = run(job, settings, tmp_path)
        assert index["slides"][1]["layout"] == "bullets"
        failed = notes.named("image generation failed")
        assert len(failed) == 1 and failed[0]["section"] == 1
        assert "sk-test-secret-key" not in json.dumps(notes.items)
        assert not list((tmp_path / "cache" / "slides").glob("gen-*"))
        assert len(api.requests) == (2 if status == 500 else 1)


def test_api_key_is_sent_as_bearer_and_never_in_errors(tmp_path: Path):
    """The key travels only in the Authorization header; an error message does not carry it."""
    with ImageApiDouble() as api:
        settings = api_settings(tmp_path, api)
        generate_image("a prompt", settings.slides.image_api)
        assert api.requests[0][1]["Authorization"] == "Bearer sk-test-secret-key"
        api.fail_times, api.fail_status = 5, 503
        with pytest.raises(ImageApiError) as caught:
            generate_image("a prompt", settings.slides.image_api)
        assert "sk-test" not in str(caught.value) and "503" in str(caught.value)


def test_images_form_with_a_link_instead_of_b64_falls_back(tmp_path: Path):
    """The images form answering with a URL (not b64_json) is a failure, not a download."""
    with ImageApiDouble() as api:
        api.scenario = "url_only"
        settings = api_settings(tmp_path, api, form="images")
        job = make_job(tmp_path, prompted("en"))
        index, notes = run(job, settings, tmp_path)
        assert index["slides"][1]["layout"] == "bullets"
        assert "b64_json" in notes.named("image generation failed")[0]["reason"]
        assert "English" in api.requests[0][2]["prompt"]


def test_transparent_image_shows_the_background_through(tmp_path: Path):
    """An RGBA image keeps its transparency: its clear pixels show the slide background."""
    settings = settings_for(tmp_path, (640, 360))
    job = make_job(tmp_path, with_images(["clear.png"]))
    picture = Image.new("RGBA", (400, 300), (0, 0, 0, 0))
    ImageDraw.Draw(picture).rectangle([100, 75, 300, 225], fill=(250, 40, 40, 255))
    picture.save(job / "clear.png")
    index, _ = run(job, settings, tmp_path)
    box = next(b for b in index["slides"][1]["boxes"] if b["kind"] == "image")["box"]
    pixels = Image.open(index["slides"][1]["path"]).convert("RGB")
    cx, cy = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
    assert pixels.getpixel((cx, cy))[0] > 200
    from stages.slides.typeset import parse_colour
    assert pixels.getpixel((box[0] + 3, cy)) == parse_colour(settings.theme.background)

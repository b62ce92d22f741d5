"""The bundled characters (samples/characters): the folder layout the loader reads, drawn by make.py."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent / "samples" / "characters"
CHARACTERS = ("mint", "kohaku")
EXPRESSIONS = ("normal", "happy", "surprised", "troubled")
OVERLAYS = ("mouth/closed", "mouth/half", "mouth/open", "eyes/open", "eyes/closed")


def _make_module():
    spec = importlib.util.spec_from_file_location("bundled_characters_make", ROOT / "make.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _rgba(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGBA", path
        return np.asarray(image).astype(np.int16)


def _composite(character: str, expression: str, *overlays: str) -> np.ndarray:
    folder = ROOT / character / expression
    picture = Image.open(folder / "base.png").convert("RGBA")
    for name in overlays:
        picture.alpha_composite(Image.open(folder / f"{name}.png").convert("RGBA"))
    return np.asarray(picture).astype(np.int16)


@pytest.mark.parametrize("character", CHARACTERS)
def test_every_expression_has_the_folder_layout(character):
    """Each expression has base.png and the five overlays, all RGBA on one 600x900 canvas."""
    assert sorted(p.name for p in (ROOT / character).iterdir()) == sorted(EXPRESSIONS)
    for expression in EXPRESSIONS:
        folder = ROOT / character / expression
        for name in ("base", *OVERLAYS):
            with Image.open(folder / f"{name}.png") as image:
                assert (image.mode, image.size) == ("RGBA", (600, 900)), f"{character}/{expression}/{name}"


def test_pictures_have_no_see_through_holes():
    """Inside the face every pixel of the base is opaque (semi-transparent paint would show the slide through)."""
    for character in CHARACTERS:
        for expression in EXPRESSIONS:
            alpha = _rgba(ROOT / character / expression / "base.png")[..., 3]
            assert alpha[200:440, 200:400].min() == 255, f"{character}/{expression}"


def test_overlays_touch_only_their_feature_and_change_it():
    """An overlay is transparent beyond its feature; the open mouth and the closed eyes change the picture there."""
    for character in CHARACTERS:
        for expression in EXPRESSIONS:
            folder = ROOT / character / expression
            for name in OVERLAYS:
                alpha = _rgba(folder / f"{name}.png")[..., 3]
                ys, xs = np.nonzero(alpha)
                assert ys.size, f"{character}/{expression}/{name} is empty"
                box_h, box_w = ys.max() - ys.min(), xs.max() - xs.min()
                assert box_h < 120 and box_w < 250, f"{name} covers more than a face feature"
            closed = _composite(character, expression, "eyes/open", "mouth/closed")
            # The base shows that pose already (a few pixels on the overlays' rims are blended differently).
            assert (np.abs(closed - _rgba(folder / "base.png")).max(axis=2) > 8).sum() < 100
            for other in (("eyes/open", "mouth/half"), ("eyes/open", "mouth/open"), ("eyes/closed", "mouth/closed")):
                changed = np.abs(_composite(character, expression, *other) - closed).sum(axis=2) > 60
                assert changed.sum() > 150, f"{character}/{expression}: {other} looks like the closed pose"


def test_expressions_and_characters_differ():
    """Each expression is its own picture, and the two characters do not look alike."""
    for character in CHARACTERS:
        bases = [_rgba(ROOT / character / e / "base.png") for e in EXPRESSIONS]
        for i in range(len(bases)):
            for j in range(i + 1, len(bases)):
                assert (np.abs(bases[i] - bases[j]).sum(axis=2) > 60).sum() > 300
    mint, kohaku = (_rgba(ROOT / c / "normal" / "base.png") for c in CHARACTERS)
    opaque = (mint[..., 3] > 0) | (kohaku[..., 3] > 0)
    assert (np.abs(mint - kohaku).sum(axis=2) > 60)[opaque].mean() > 0.3


@pytest.mark.parametrize(("character", "expression"), [("mint", "happy"), ("kohaku", "troubled")])
def test_make_draws_the_committed_pictures(character, expression):
    """make.py is the source of the committed PNGs: drawing them again gives the same pixels."""
    make = _make_module()
    assert [d.id for d in make.DESIGNS] == list(CHARACTERS) and make.EXPRESSIONS == EXPRESSIONS
    design = next(d for d in make.DESIGNS if d.id == character)
    drawn = make.draw_expression(design, expression)
    assert sorted(drawn) == sorted(("base", *OVERLAYS))
    for name, image in drawn.items():
        committed = _rgba(ROOT / character / expression / f"{name}.png")
        assert np.abs(np.asarray(image).astype(np.int16) - committed).max() <= 2, f"{character}/{expression}/{name}"


def test_the_demo_settings_use_the_bundled_pair(tmp_path, monkeypatch):
    """samples/offline-personas.toml (what make demo uses): a dialogue of two personas, each with a bundled
    character offering every expression; the sample two-persona script is valid with it."""
    from stages.characters import expression_names
    from stages.script.loader import validate_script_file
    from stages.settings import load_settings

    monkeypatch.chdir(tmp_path)  # the character folders are relative to the settings file, not here
    settings = load_settings(config=ROOT.parent / "offline-personas.toml", home=tmp_path)
    assert settings.script.style == "dialogue"
    assert [p.id for p in settings.personas] == list(CHARACTERS)
    for persona in settings.personas:
        assert persona.character.folder.resolve() == (ROOT / persona.id).resolve()
        assert sorted(expression_names(persona.character)) == sorted(EXPRESSIONS)
    assert validate_script_file(ROOT.parent / "dialogue-script.yaml", settings) == []

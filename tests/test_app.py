"""The dashboard end to end through Streamlit's AppTest, against fresh data folders.

The demo patient is seeded once per session through the real app (an AppTest run on an empty data folder:
photos measured and compared for real); each test then works on its own copy of that folder.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import re
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import MAIN, another_photo, figure_captions, media_images, new_patient
from helpers import signed_in as session_of
from PIL import Image

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from analyzer.errors import ReliefError  # noqa: E402
from relief_app import charts, demo, text, visits  # noqa: E402
from storage import Actor, NewPhoto, open_store  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
SAMPLES = REPO / "sample_images"
TIMEOUT = 60


ADMIN_PASSWORD = "demo-admin-password-1"


def _app(signed_in: int | None = 1, **query) -> AppTest:
    """The app; by default with the session of account 1 (``admin`` of clinic MAIN) as after signing in.

    ``signed_in=None``: a new, signed-out session (the sign-in form). Signing in through the form itself is
    tested in the security tests and the browser tests.
    """
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in query.items():
        at.query_params[k] = str(v)
    if signed_in is not None:
        session_of(at, signed_in)
    return at


def _sign_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input(key="signin_username").input(username)
    at.text_input(key="signin_password").input(password)
    return at.button(key="signin_submit").click().run()


def _texts(at: AppTest) -> str:
    """Every piece of text the page shows (markdown, titles, captions, alerts, metrics, widget labels)."""
    parts = []
    for kind in ("markdown", "title", "header", "subheader", "caption", "info", "success", "warning", "error"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    parts += _image_captions(at)
    for sb in at.selectbox:
        parts.append(sb.label)
        parts += [str(o) for o in sb.options]
    return _plain("\n".join(parts))


def _plain(markdown: str) -> str:
    """Markdown as read: user text on the pages is backslash-escaped (relief_app.text.md_escape)."""
    return re.sub(r"\\(.)", r"\1", str(markdown))


def _plain_all(elements) -> list[str]:
    return [_plain(e.value) for e in elements]


def _image_captions(at: AppTest) -> list[str]:
    assert media_images(at) == []  # every picture is in the page, none at a /media URL
    return figure_captions(at)


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _plotly_specs(at: AppTest) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def _sidecar(name: str) -> dict:
    return json.loads((SAMPLES / name).with_suffix(".json").read_text())


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def seeded_dir(tmp_path_factory):
    """A data folder in which the real app seeded the demo patient on its first start."""
    if not all((SAMPLES / n).is_file() for n, _, _ in demo.COURSE):
        pytest.skip("sample_images/ missing — run `python -m analyzer.synth --samples sample_images`")
    data = tmp_path_factory.mktemp("seeded") / "data"
    mp = pytest.MonkeyPatch()
    mp.setenv("RELIEF_DATA_DIR", str(data))
    mp.delenv("RELIEF_DATABASE_URL", raising=False)
    mp.delenv("RELIEF_DEMO", raising=False)
    mp.setenv("RELIEF_ADMIN_PASSWORD", ADMIN_PASSWORD)
    try:
        at = _app(signed_in=None).run()  # first start: demo seeded, admin created, the sign-in form
        _no_exception(at)
        assert demo.DEMO_NAME not in _texts(at)
        at = _sign_in(at, "admin", ADMIN_PASSWORD)
        _no_exception(at)
        first_page = _texts(at)
    finally:
        mp.undo()
    return data, first_page


@pytest.fixture
def data_dir(seeded_dir, tmp_path, monkeypatch):
    """A private copy of the seeded data folder, made the app's data folder."""
    src, _ = seeded_dir
    dst = tmp_path / "data"
    shutil.copytree(src, dst)
    monkeypatch.setenv("RELIEF_DATA_DIR", str(dst))
    monkeypatch.delenv("RELIEF_DATABASE_URL", raising=False)
    monkeypatch.delenv("RELIEF_DEMO", raising=False)
    monkeypatch.setenv("RELIEF_ADMIN_PASSWORD", ADMIN_PASSWORD)
    return dst


@pytest.fixture
def store(data_dir):
    s = open_store(data_dir)
    yield s
    s.close()


@pytest.fixture
def demo_id(store):
    [p] = [p for p in store.list_patients(MAIN, ) if p.name == demo.DEMO_NAME]
    return p.id


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG whose header claims w × h pixels (a decompression bomb's calling card) with almost no data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(
        b"IEND", b"")


# ---------------------------------------------------------------------------------------------------- text
def test_no_pages_folder_beside_the_entry_point():
    # Streamlit would run a page from a folder named pages/ without app.py on the first request after a start.
    assert not (REPO / "pages").exists()
    assert (REPO / "views").is_dir()



def test_change_is_written_with_minus_and_interval():
    assert text.change_with_interval(-18.2, -24.4, -12.0) == "\u221218 % (\u221224 to \u221212 %)"
    assert text.change_with_interval(5.0, 1.0, 9.0) == "+5 % (+1 to +9 %)"
    assert text.change_with_interval(None, None, None) == "not compared yet"


def test_visit_sentence_says_smoother_with_range_or_noise():
    assert text.visit_sentence(-18.0, -24.0, -12.0, True) == \
        "Texture 18 % smoother than at your first visit (range 12–24 %)"
    assert text.visit_sentence(-3.0, -8.0, 2.0, False).startswith("No change beyond measurement noise yet")
    # at the 12-week evaluation "yet — collagen takes 6–8 weeks" would promise what has not come
    late = text.visit_sentence(-3.0, -8.0, 2.0, False, weeks=12.0)
    assert late.startswith("No change beyond measurement noise so far") and "6–8 weeks" not in late
    assert "could not be compared" in text.visit_sentence(None, None, None, None)
    assert "starting point" in text.visit_sentence(None, None, None, None, first_visit=True)
    assert "rougher" in text.visit_sentence(7.0, 2.0, 12.0, True)


def test_metric_labels_and_units_come_from_the_registry():
    from analyzer.registry import METRICS

    assert text.PROGRESS_METRICS[0] == "roughness_index"
    for name in text.PROGRESS_METRICS:
        assert text.metric_unit(name) == METRICS[name].unit
        assert text.metric_label(name).lower() == name.replace("_", " ")


# ---------------------------------------------------------------------------------------------------- demo
def test_demo_patient_is_seeded_on_first_start_and_listed(seeded_dir, store, demo_id):
    _, first_page = seeded_dir
    assert demo.DEMO_NAME in first_page
    visits_ = store.visits(MAIN, demo_id)
    assert [v.date - visits_[0].date for v in visits_] == [dt.timedelta(weeks=w) for _, w, _ in demo.COURSE]
    assert [t.date for t in store.treatments(MAIN, demo_id)] == [
        visits_[i].date for i, (_, _, treated) in enumerate(demo.COURSE) if treated]
    points = store.progress(MAIN, demo_id, demo.DEMO_REGION)
    assert all(p.roughness_index is not None for p in points)
    for p in points:  # the demo photos carry the calibration card (or the true scale when it is not found)
        m = store.get_measurement(MAIN, demo_id, p.photo_id, visits.analyzer.ALGORITHM_VERSION)
        assert m.scale_source in {"card", "given"}
        assert m.px_per_mm == pytest.approx(_sidecar(store.photo(MAIN, demo_id, p.photo_id).filename)["px_per_mm"], rel=0.03)
    assert all(p.change_pct is not None and p.ci_low is not None for p in points[1:])
    # Ground truth: the synthetic scars are shallower at week 12 (true Sdq ratio from the sidecars).
    truth = 100 * (_sidecar("week12.jpg")["true"]["scar"]["Sdq"] / _sidecar("week00_baseline.jpg")["true"]["scar"][
        "Sdq"] - 1)
    assert truth < -20
    assert points[-1].change_pct < 0 and points[-1].significant
    assert abs(points[-1].change_pct - truth) < 20
    # The list row shows the latest change vs baseline with its interval.
    summary = store.list_patients(MAIN, )[0]
    row = text.change_with_interval(summary.change_pct, summary.change_ci_low, summary.change_ci_high)
    assert row in first_page and "\u2212" in row


def test_demo_seeding_is_idempotent_and_can_be_turned_off(store, tmp_path, monkeypatch):
    n = len(store.list_patients(MAIN, ))
    assert demo.seed_demo(store) is None
    assert len(store.list_patients(MAIN, )) == n
    monkeypatch.setenv("RELIEF_DEMO", "0")
    monkeypatch.setenv("RELIEF_DATA_DIR", str(tmp_path / "empty"))
    at = _app().run()
    _no_exception(at)
    assert demo.DEMO_NAME not in _texts(at)
    assert "No patients yet" in _texts(at)


# ------------------------------------------------------------------------------------------------ patients
def test_create_patient_selects_it_and_lists_it(data_dir, store):
    at = _app().run()
    at.text_input(key="new_patient_name").set_value("Ada Lovelace")
    at.text_input(key="new_patient_code").set_value("P-042")
    at.button(key="create_patient").click().run()
    _no_exception(at)
    [rec] = [p for p in store.list_patients(MAIN, ) if p.name == "Ada Lovelace"]
    assert rec.code == "P-042"
    assert at.session_state["patient_id"] == rec.id
    assert "Ada Lovelace" in _texts(at)
    # A second patient with the same code: one-line error, nothing created, no traceback.
    at.text_input(key="new_patient_name").set_value("Someone Else")
    at.text_input(key="new_patient_code").set_value("P-042")
    at.button(key="create_patient").click().run()
    _no_exception(at)
    assert any("P-042" in e for e in _plain_all(at.error))
    assert [p.name for p in store.list_patients(MAIN, "P-042")] == ["Ada Lovelace"]


def test_name_fields_show_their_limit(data_dir, store):
    """The forms show how many characters fit (the column's length, from storage), so nothing typed is cut
    without the practitioner seeing it; storage refuses longer text sent any other way
    (tests/test_storage.py::test_long_names_and_treatment_text_are_refused_not_cut)."""
    at = _app().run()
    assert at.text_input(key="new_patient_name").max_chars == 200
    assert at.text_input(key="new_patient_code").max_chars == 100
    at.session_state["patient_id"] = new_patient(store, "Limits").id
    at.run()
    assert at.text_input(key="edit_patient_name").max_chars == 200
    assert at.text_input(key="edit_patient_code").max_chars == 100


def test_search_filters_and_open_selects_a_patient(data_dir, store, demo_id):
    other = new_patient(store, "Zed Other", code="Z-1")
    at = _app().run()
    at.text_input(key="patient_search").set_value("zed").run()
    _no_exception(at)
    shown = _texts(at)
    assert "Zed Other" in "\n".join(m.value for m in at.markdown)
    assert demo.DEMO_NAME not in "\n".join(m.value for m in at.markdown)
    at.button(key=f"open_patient_{other.id}").click().run()
    assert at.session_state["patient_id"] == other.id
    assert shown


def test_edit_patient_updates_the_name(data_dir, store, demo_id):
    at = _app().run()
    at.session_state["patient_id"] = demo_id
    at.run()
    at.text_input(key="edit_patient_name").set_value("Demo patient (renamed)")
    at.button(key="update_patient").click().run()
    _no_exception(at)
    assert store.patient(MAIN, demo_id).name == "Demo patient (renamed)"


# -------------------------------------------------------------------------------------- new visit: library
def test_save_new_visit_measures_stores_and_compares_with_baseline(store):
    p = new_patient(store, "Save Path")
    base = (SAMPLES / "week00_baseline.jpg").read_bytes()
    follow = (SAMPLES / "week12.jpg").read_bytes()
    px = _sidecar("week00_baseline.jpg")["px_per_mm"]
    first = visits.save_new_visit(store, MAIN, p.id, date=dt.date(2025, 1, 6), region="left cheek",
                                  uploads=[(base, "week00_baseline.jpg")], px_per_mm=px,
                                  treatment={"needle_depth_mm": 1.5, "area": "cheeks"})
    assert len(first.visit.photos) == 1 and first.comparisons[0].comparison is None  # it is the baseline
    m = store.get_measurement(MAIN, p.id, first.visit.photos[0].id, visits.analyzer.ALGORITHM_VERSION)
    assert m is not None and m.scale_source == "given" and m.px_per_mm == pytest.approx(px)
    assert store.treatments(MAIN, p.id)[0].needle_depth_mm == 1.5
    second = visits.save_new_visit(store, MAIN, p.id, date=dt.date(2025, 3, 31), region="left cheek",
                                   uploads=[(follow, "week12.jpg")])
    [outcome] = second.comparisons
    assert outcome.error is None and outcome.baseline.id == first.visit.photos[0].id
    c = outcome.comparison
    assert c.change_pct < 0 and c.ci_low <= c.change_pct <= c.ci_high and c.significant
    assert store.progress(MAIN, p.id, "left cheek")[-1].change_pct == pytest.approx(c.change_pct)


def _with_camera(jpeg: bytes, make: str, model: str) -> bytes:
    """The same JPEG as taken with another camera: its EXIF make and model (the pixels re-encoded at quality 95)."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = make, model
    out = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(out, "JPEG", quality=95, exif=exif)
    return out.getvalue()


def test_a_follow_up_from_another_phone_is_flagged_though_stored_files_lose_their_metadata(store):
    """The camera is read at upload (the stored file has no EXIF left) and kept with the photo; a comparison of
    photos from two cameras says so — phones process photos differently, and the index reads that as relief."""
    p = new_patient(store, "Two Phones")
    base = _with_camera((SAMPLES / "week00_baseline.jpg").read_bytes(), "Apple", "iPhone 13")
    follow = _with_camera((SAMPLES / "week12.jpg").read_bytes(), "Google", "Pixel 8")
    px = _sidecar("week00_baseline.jpg")["px_per_mm"]
    first = visits.save_new_visit(store, MAIN, p.id, date=dt.date(2025, 1, 6), region="left cheek",
                                  uploads=[(base, "a.jpg")], px_per_mm=px)
    stored = store.photo_bytes(MAIN, p.id, first.visit.photos[0].id)
    assert b"iPhone 13" in base and b"iPhone 13" not in stored  # metadata removed from the file ...
    assert store.photo(MAIN, p.id, first.visit.photos[0].id).capture["camera"] == "Apple iPhone 13"  # ... kept here
    second = visits.save_new_visit(store, MAIN, p.id, date=dt.date(2025, 3, 31), region="left cheek",
                                   uploads=[(follow, "b.jpg")])
    [outcome] = second.comparisons
    caveats = outcome.comparison.result["consistency"]["differences"]
    assert any("another camera (Google Pixel 8) than the baseline (Apple iPhone 13)" in c for c in caveats)


@pytest.mark.parametrize("data, name, words", [
    (b"this is a text file, not a photo\n", "notes.jpg", "not an image"),
    (b"", "empty.jpg", "empty"),
    (_png(12, 12), "tiny.png", "200"),
    (_png_header_only(60000, 60000), "bomb.png", "more than Relief accepts"),
], ids=["text-named-jpg", "empty", "tiny", "absurd-size"])
def test_bad_upload_gives_one_line_error_and_saves_nothing(store, data, name, words):
    p = new_patient(store, "Bad Upload")
    good = (SAMPLES / "week00_baseline.jpg").read_bytes()
    with pytest.raises(ReliefError) as err:
        visits.save_new_visit(store, MAIN, p.id, date=dt.date.today(), region="left cheek",
                              uploads=[(good, "good.jpg"), (data, name)])
    message = str(err.value)
    assert "\n" not in message and message
    assert name in message
    assert words in message
    assert store.visits(MAIN, p.id) == []
    assert store.photos(MAIN, p.id) == []


def test_blurry_photo_fails_the_quality_gate_but_can_be_kept():
    a = visits.analyse_photo((SAMPLES / "bad_blurry.jpg").read_bytes(), "bad_blurry.jpg")
    assert a.readable and not a.quality_ok and a.codes and a.warnings
    assert a.scale_label in {"card", "given", "assumed"}


# -------------------------------------------------------------------------------------- new visit: the page
def _uploader_supported(at: AppTest) -> bool:
    try:
        up = at.file_uploader(key="upload_photos")
    except (AttributeError, KeyError):
        return False
    return hasattr(up, "set_value")


def _to_new_visit(demo_id: int, patient_id: int | None = None) -> AppTest:
    at = _app().run()
    at.session_state["patient_id"] = patient_id or demo_id
    at.switch_page("views/new_visit.py").run()
    _no_exception(at)
    return at


def test_upload_page_without_patient_asks_to_select_one(data_dir, store):
    new_patient(store, "Second")  # two patients: none preselected
    at = _app().run()
    at.switch_page("views/new_visit.py").run()
    _no_exception(at)
    assert any("Select a patient" in i for i in _plain_all(at.info))


def test_upload_page_rejects_a_bad_file_and_saves_nothing(data_dir, store, demo_id):
    p = new_patient(store, "Upload Page")
    at = _to_new_visit(demo_id, p.id)
    if not _uploader_supported(at):
        pytest.skip("this Streamlit's AppTest cannot drive st.file_uploader")
    good = (SAMPLES / "week00_baseline.jpg").read_bytes()
    at.file_uploader(key="upload_photos").set_value(
        [("good.jpg", good, "image/jpeg"), ("notes.jpg", b"just text", "image/jpeg")])
    at.run()
    _no_exception(at)
    assert any("notes.jpg is not an image" in e for e in _plain_all(at.error))
    at.button(key="save_visit").click().run()
    _no_exception(at)
    assert any("Nothing was saved" in e for e in _plain_all(at.error))
    assert store.visits(MAIN, p.id) == []


def test_upload_page_says_in_one_line_when_the_disk_is_full(data_dir, store, demo_id, monkeypatch):
    # (found by a review: the OSError reached the page as Streamlit's exception box; storage rolled back)
    import errno

    import storage.blobs as blobs

    p = new_patient(store, "Disk Full")
    at = _to_new_visit(demo_id, p.id)
    if not _uploader_supported(at):
        pytest.skip("this Streamlit's AppTest cannot drive st.file_uploader")
    a = another_photo((SAMPLES / "week00_baseline.jpg").read_bytes(), 3)
    b = another_photo((SAMPLES / "week06.jpg").read_bytes(), 4)
    at.file_uploader(key="upload_photos").set_value([("a.jpg", a, "image/jpeg"), ("b.jpg", b, "image/jpeg")])
    at.selectbox(key="visit_region").select_index(0)
    at.run()
    _no_exception(at)
    real, calls = blobs._write_atomic, []

    def full_disk(final, data):
        calls.append(final)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(final))
        return real(final, data)

    monkeypatch.setattr(blobs, "_write_atomic", full_disk)
    at.button(key="save_visit").click().run()
    _no_exception(at)
    assert len(calls) >= 2
    assert any("photos folder cannot be written (No space left on device)" in e for e in _plain_all(at.error))
    assert store.visits(MAIN, p.id) == []


def test_upload_page_asks_for_a_black_and_white_photo_in_colour(data_dir, store, demo_id):
    """A black-and-white photo passed as "good enough to measure", with the reason it is not only as a bullet
    below (a product review); against colour photos its change is partly the colour's."""
    at = _to_new_visit(demo_id)
    if not _uploader_supported(at):
        pytest.skip("this Streamlit's AppTest cannot drive st.file_uploader")
    buf = io.BytesIO()
    Image.open(SAMPLES / "week12.jpg").convert("L").save(buf, "JPEG", quality=95)
    at.file_uploader(key="upload_photos").set_value([("gray.jpg", buf.getvalue(), "image/jpeg")])
    at.run()
    _no_exception(at)
    assert any(w.startswith("Black-and-white photo: retake it in colour") for w in _plain_all(at.warning))
    assert not any("good enough to measure" in x for x in _plain_all(at.success))


def test_upload_page_saves_a_visit_and_shows_the_comparison(data_dir, store, demo_id):
    at = _to_new_visit(demo_id)
    if not _uploader_supported(at):
        pytest.skip("this Streamlit's AppTest cannot drive st.file_uploader")
    n_before = len(store.visits(MAIN, demo_id))
    assert at.selectbox(key="visit_region").value == demo.DEMO_REGION  # the patient's known region first
    assert any("50 %" in c for c in _image_captions(at))  # the baseline ghost is shown
    blurry = (SAMPLES / "bad_blurry.jpg").read_bytes()
    follow = another_photo((SAMPLES / "week06.jpg").read_bytes(), 1)  # (the demo's own week-6 photo is saved already)
    at.file_uploader(key="upload_photos").set_value(
        [("week06.jpg", follow, "image/jpeg"), ("bad_blurry.jpg", blurry, "image/jpeg")])
    at.checkbox(key="treatment_done").check()
    at.run()
    _no_exception(at)
    keep_blurry = at.checkbox(key=f"keep_{visits.sha256(blurry)[:12]}")
    assert keep_blurry.value is False and keep_blurry.label == "Keep it anyway"  # failing photo: dropped by default
    assert at.checkbox(key=f"keep_{visits.sha256(follow)[:12]}").value is True
    assert any("retake" in w.lower() for w in _plain_all(at.warning))
    assert "scale" in _texts(at).lower()
    at.number_input(key="needle_depth_mm").set_value(1.0)
    at.button(key="save_visit").click().run()
    _no_exception(at)
    visits_ = store.visits(MAIN, demo_id)
    assert len(visits_) == n_before + 1
    assert [ph.filename for ph in visits_[-1].photos] == ["week06.jpg"]
    assert store.treatments(MAIN, demo_id)[-1].needle_depth_mm == 1.0
    assert any(m.value.startswith("\u2212") and "%" in m.value for m in at.metric)
    assert at.button(key="save_visit").disabled  # the same photos cannot be saved twice by a double click
    # ... nor as another visit by changing the date (they would read "no change" at that date)
    at.date_input(key="visit_date").set_value(dt.date.today() - dt.timedelta(days=3)).run()
    _no_exception(at)
    assert at.button(key="save_visit").disabled
    # The next visit's photo added beside them (the upload box keeps its files when the page is opened again): the
    # saved one is left out with the reason, and the new one is saved on its own (it was refused as a whole).
    nxt = another_photo((SAMPLES / "week12.jpg").read_bytes(), 2)
    at.file_uploader(key="upload_photos").set_value(
        [("week06.jpg", follow, "image/jpeg"), ("bad_blurry.jpg", blurry, "image/jpeg"),
         ("week12.jpg", nxt, "image/jpeg")])
    at.date_input(key="visit_date").set_value(dt.date.today()).run()
    _no_exception(at)
    assert any("Saved already at the visit of" in w for w in _plain_all(at.warning))
    at.button(key="save_visit").click().run()
    _no_exception(at)
    assert [ph.filename for ph in store.visits(MAIN, demo_id)[-1].photos] == ["week12.jpg"]
    # ... and the page then confirms that save, the earlier photo still left out, Save disabled
    assert any("Saved the visit" in x for x in _plain_all(at.success))
    assert any("Saved already at the visit of" in w for w in _plain_all(at.warning))
    assert at.button(key="save_visit").disabled


# ------------------------------------------------------------------------------------------------ progress
def test_progress_page_draws_the_chart_with_intervals_treatments_and_windows(data_dir, demo_id):
    at = _app().run()
    at.switch_page("views/progress.py").run()
    _no_exception(at)
    assert at.selectbox(key="progress_metric").value == "roughness_index"
    [spec] = _plotly_specs(at)
    [trace] = spec["data"]
    assert len(trace["x"]) == len(demo.COURSE)
    assert trace["error_y"]["visible"] and any(v for v in trace["error_y"]["array"] if v)
    shapes = spec["layout"]["shapes"]
    windows = [s for s in shapes if s["type"] == "rect"]
    assert sorted(round(s["x0"]) for s in windows) == [6, 12]  # 6–8 weeks after the treatments at weeks 0 and 6
    notes = " ".join(a.get("text", "") for a in spec["layout"]["annotations"])
    assert "12-week evaluation" in notes and "treatment" in notes
    assert "negative = smoother" in _texts(at)
    at.selectbox(key="progress_metric").set_value("scar_density").run()
    _no_exception(at)
    assert len(_plotly_specs(at)) == 1


def test_progress_page_says_which_changes_read_differently_after_an_update_of_the_analysis(data_dir, store,
                                                                                         demo_id):
    """Results an earlier algorithm version stored are kept; when the installed version reads a visit's change
    differently (by 0.1 point or more, or another verdict), the Progress page says so with both readings. The same
    numbers under an earlier version, or any under a later one (a downgrade), say nothing."""
    version = visits.analyzer.ALGORITHM_VERSION
    points = store.progress(MAIN, demo_id, demo.DEMO_REGION, algorithm_version=version)
    base, follow = points[0], [p for p in points[1:] if p.change_pct is not None]
    assert len(follow) >= 2

    def store_as(v, shift=0.0, flip=None):
        for p in follow:
            store.save_comparison(MAIN, demo_id, base.photo_id, p.photo_id, v, change_pct=p.change_pct + shift,
                                  ci_low=p.ci_low, ci_high=p.ci_high, mdc_pct=9.0,
                                  significant=(not p.significant) if p is flip else p.significant)

    def shown():
        import streamlit as st

        st.cache_data.clear()  # (results written beside the app, as update-results does, are read after the TTL)
        at = _app().run()
        at.session_state["patient_id"] = demo_id
        at.switch_page("views/progress.py").run()
        _no_exception(at)
        return _plain_all(at.info)

    store_as("1.0.9")  # the same readings: nothing to tell
    store_as("99.0", shift=5.0)    # a later version (the installation was downgraded): not "before"
    assert not [i for i in shown() if "Computed again" in i]
    store_as("1.1.0", shift=0.8, flip=follow[0])
    [note] = [i for i in shown() if "Computed again" in i]
    assert f"analysis version {version}" in note and "With version 1.1.0" in note
    now, before = follow[-1].change_pct, follow[-1].change_pct + 0.8
    assert f"{follow[-1].date:%d %b %Y}: {text.change_text(now, 1)}" in note
    assert f"(was {text.change_text(before, 1)}" in note
    first = [line for line in note.splitlines() if f"{follow[0].date:%d %b %Y}" in line][0]
    verdicts = [text.significance_text(s, follow[0].change_pct) for s in (follow[0].significant,
                                                                         not follow[0].significant)]
    assert first.index(verdicts[0]) < first.index("was") < first.index(verdicts[1])


def test_recomputed_changes_lists_what_a_practitioner_would_read_differently():
    from types import SimpleNamespace as P

    def pts(*changes, significant=(), caveats=()):
        return [P(visit_id=0, date=dt.date(2026, 1, 1), is_baseline=True, change_pct=0.0, significant=False,
                  caveats=())] + [
            P(visit_id=i + 1, date=dt.date(2026, 2, i + 1), is_baseline=False, change_pct=c,
              significant=(i in significant), caveats=("light moved",) if i in caveats else ())
            for i, c in enumerate(changes)]

    nan = float("nan")
    before = pts(-2.46, -2.41, nan, nan, -20.0, -20.0, None, -9.0)
    now = pts(-2.54, -2.44, nan, -5.0, -20.0, -20.0, -3.0, -9.0, significant={4}, caveats={5})
    got = {m["date"].day: m for m in visits.recomputed_changes(now, before)}
    # -2.46 -> -2.54: the page's "-2 %" becomes "-3 %" (told with two decimals, as one would read the same);
    # -2.41 -> -2.44 reads the same everywhere; NaN twice: neither version compared it; NaN -> -5: now compared;
    # another verdict, another "taken alike"; a visit the earlier version never compared; the same reading.
    assert sorted(got) == [1, 4, 5, 6]
    assert got[1]["digits"] == 2 and got[4]["digits"] == 1
    assert got[5]["significant_now"] and not got[5]["significant_before"]
    assert got[6]["alike_before"] and not got[6]["alike_now"]
    note = _plain(text.recomputed_text("1.0.0", "1.1.0", list(got.values())))
    assert "\u22122.54 %" in note and "(was \u22122.46 %" in note and "photos not taken alike" in note


def test_tables_a_browser_downloads_as_csv_hold_no_formula(data_dir, store, demo_id):
    """Every table's toolbar downloads it as CSV: a treatment note typed as =HYPERLINK(...) went out as a live
    formula (Streamlit only quotes cells). Text that a spreadsheet runs starts with an apostrophe."""
    store.add_treatment(MAIN, demo_id, "2026-01-20", area="cheeks", notes='=HYPERLINK("http://evil.example")')
    at = _app().run()
    at.session_state["patient_id"] = demo_id
    at.switch_page("views/progress.py").run()
    _no_exception(at)
    [table] = [d.value for d in at.dataframe if "Notes" in d.value.columns]
    notes = [n for n in table["Notes"] if "HYPERLINK" in str(n)]
    assert notes == ["'=HYPERLINK(\"http://evil.example\")"]


@pytest.mark.parametrize("value, safe", [("=1+1", "'=1+1"), ("  =1+1", "'  =1+1"), ("\n@SUM(A1)", "'\n@SUM(A1)"),
                                        ("\uff1d1+1", "'\uff1d1+1"), ("\t=1", "'\t=1"), ("left cheek", "left cheek"),
                                        ("\u00a0\u3000=1", "'\u00a0\u3000=1"), ("\ufe661", "'\ufe661"),
                                        ("\u22124 %", "\u22124 %"), (4.5, 4.5),
                                        ("\u200b=1", "'\u200b=1"), ("\ufeff+1", "'\ufeff+1"),
                                        ("\u2028@A1", "'\u2028@A1"), ("\u200b", "\u200b")])
def test_not_a_formula(value, safe):
    assert text.not_a_formula(value) == safe


def test_progress_series_uses_the_stored_interval(store, demo_id):
    points = store.progress(MAIN, demo_id, demo.DEMO_REGION)
    series = charts.progress_series(points)
    assert series[0].change == 0.0 and series[0].is_baseline
    assert series[-1].low == pytest.approx(points[-1].ci_low)
    assert series[-1].weeks == pytest.approx(12.0)
    # A follow-up without a comparison (not aligned, or not compared yet) has no change: not the plain ratio of
    # the two photos' values (the chart showed a point at -0.5 % and "Latest change 0 %" for an unaligned photo).
    uncompared = [dataclasses.replace(p, change_pct=None, ci_low=None, ci_high=None, significant=None)
                  if not p.is_baseline else p for p in points]
    series = charts.progress_series(uncompared)
    assert [s.change for s in series[1:]] == [None] * (len(points) - 1)
    ratio = charts.progress_series(uncompared, "erythema_index")  # secondary measures: the ratio, no verdict
    assert all(s.change is not None and s.significant is None for s in ratio[1:])


# ------------------------------------------------------------------------------------------------- compare
def test_compare_page_shows_aligned_photos_difference_map_and_scar_table(data_dir, demo_id):
    at = _app().run()
    at.switch_page("views/compare.py").run()
    _no_exception(at)
    assert at.selectbox(key="compare_a").index == 0
    assert at.selectbox(key="compare_b").index == len(demo.COURSE) - 1
    [spec] = _plotly_specs(at)
    [heat] = spec["data"]
    assert heat["type"] == "heatmap" and heat["colorscale"][0][1].lower() != heat["colorscale"][-1][1].lower()
    assert "blue = smoother" in heat["colorbar"]["title"]["text"]
    assert len(_image_captions(at)) >= 3  # before, after (aligned), overlay
    assert len(at.dataframe) == 1
    at.slider(key="overlay_opacity").set_value(80).run()
    _no_exception(at)
    at.selectbox(key="compare_b").set_value(at.selectbox(key="compare_a").value).run()
    assert any("two different visits" in i for i in _plain_all(at.info))


# ---------------------------------------------------------------------------------------------- visit mode
def test_patient_link_shows_plain_sentence_and_no_other_patient(data_dir, store, demo_id):
    new_patient(store, "Zed Other", code="ZED-9")
    token, _ = store.links.issue(MAIN, demo_id)
    at = _app(signed_in=None, link=token).run()
    _no_exception(at)
    shown = _texts(at)
    assert "smoother than at your first visit (range" in shown
    assert "Zed Other" not in shown and "ZED-9" not in shown
    assert not at.sidebar.children or all(
        "Zed" not in str(getattr(c, "value", "")) for c in at.sidebar.children.values())
    with pytest.raises(KeyError):
        at.selectbox(key="sidebar_patient")
    assert len(_plotly_specs(at)) == 1


def test_a_link_leaves_the_address_bar_and_its_session_ends_when_idle(data_dir, store, demo_id):
    """The token stayed in the address bar (browser history of a shared computer, proxy logs) for the link's two
    weeks, and a link session never timed out."""
    token, _ = store.links.issue(MAIN, demo_id)
    at = _app(signed_in=None, link=token).run()
    _no_exception(at)
    assert "smoother than at your first visit" in _texts(at)
    # the page replaces its history entry by the address without the token (a script the browser test runs)
    assert [e for e in at.get("iframe") if "replaceState" in e.proto.srcdoc and "'link'" in e.proto.srcdoc]
    at.run()  # the next run keeps the session (the token is in the session, not the URL)
    assert "smoother than at your first visit" in _texts(at)
    at.session_state["last_active"] = at.session_state["last_active"] - 31 * 60
    at.run()
    _no_exception(at)
    shown = _texts(at)
    assert "open your link again" in shown and demo.DEMO_NAME not in shown and "smoother" not in shown
    assert not _plotly_specs(at) and not _image_captions(at)


def test_patient_link_of_the_other_patient_shows_nothing_of_the_demo(data_dir, store, demo_id):
    other = new_patient(store, "Zed Other")
    token, _ = store.links.issue(MAIN, other.id)
    at = _app(signed_in=None, link=token).run()
    _no_exception(at)
    shown = _texts(at)
    assert demo.DEMO_NAME not in shown and "Demo" not in shown
    assert "Zed" in shown


@pytest.mark.parametrize("query", [dict(mode="visit", patient="1"), dict(mode="visit", patient="999999"),
                                   dict(link="not-a-token-at-all-but-long-enough"), dict(link="")])
def test_old_visit_mode_links_and_bad_tokens_show_no_patient(data_dir, store, demo_id, query):
    at = _app(signed_in=None, **query).run()
    _no_exception(at)
    shown = _texts(at)
    assert demo.DEMO_NAME not in shown and "Demo" not in shown
    assert "not valid" in shown
    assert not _plotly_specs(at) and not _image_captions(at)


# -------------------------------------------------------------------------------------------- face regions
def test_region_metrics_are_stored_as_flat_floats_and_read_back():
    regions = {"left cheek": {"roughness_index": 4.5, "area_cm2": 3.0},
               "scar: lower edge": {"roughness_index": float("nan")}}
    flat = visits.flatten_regions(regions)
    assert flat == {"region:left cheek:roughness_index": 4.5, "region:left cheek:area_cm2": 3.0,
                    "region:scar: lower edge:roughness_index": pytest.approx(float("nan"), nan_ok=True)}
    assert all(isinstance(v, float) for v in flat.values())
    back = visits.regions_from_metrics({**flat, "roughness_index": 4.0, "scar.Sq": 1.0})
    assert back["left cheek"] == regions["left cheek"]
    assert set(back) == {"left cheek", "scar: lower edge"}
    # Storage returns JSON null as NaN (or None): both read back as NaN.
    assert np.isnan(visits.regions_from_metrics({"region:chin:pore_density": None})["chin"]["pore_density"])


@pytest.mark.parametrize("percent, size, box", [
    ((25, 25, 50, 50), (2000, 1000), (500, 250, 1000, 500)),
    ((0, 0, 100, 100), (2000, 1000), (0, 0, 1998, 998)),  # stops two pixels inside the edge
    ((90, 95, 50, 50), (1000, 1000), (900, 950, 98, 48)),  # reaching past the edge: shortened
], ids=["centre", "whole", "past-the-edge"])
def test_box_in_percent_becomes_pixels_inside_the_photo(percent, size, box):
    assert visits.box_from_percent(*percent, size) == box


def test_photo_size_is_upright_as_the_library_reads_it():
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90°: a 300 × 200 file is shown 200 × 300
    Image.fromarray(np.full((200, 300, 3), 128, np.uint8)).save(buf, "JPEG", exif=exif)
    assert visits.photo_size(buf.getvalue()) == (200, 300)
    assert visits.photo_size(_png(40, 30)) == (40, 30)
    assert visits.photo_size(b"not a photo") is None
    gif = io.BytesIO()
    Image.new("RGB", (40, 30)).save(gif, format="GIF")  # a format the loader refuses has no size either
    assert visits.photo_size(gif.getvalue()) is None


def test_region_outlines_are_drawn_where_the_regions_are():
    from relief_app import images

    thumb = np.zeros((100, 200, 3), np.uint8)  # a 400 × 200 px photo shown at half size
    out = images.draw_regions(thumb, {"box": images.box_outline((100, 40, 200, 100))}, scale=0.5, labels=False)
    assert thumb.max() == 0  # the picture itself is not drawn on
    drawn = out.max(axis=-1) > 0
    assert drawn[20, 50:150].mean() > 0.9 and drawn[69, 50:150].mean() > 0.9  # top and bottom edges
    assert drawn[20:70, 50].mean() > 0.9 and drawn[20:70, 149].mean() > 0.9  # left and right edges
    assert not drawn[30:60, 60:140].any() and not drawn[:15].any() and not drawn[:, :45].any()


def test_warp_wedges_turn_grey_but_black_inside_the_photo_stays():
    import cv2

    from relief_app import images

    rng = np.random.default_rng(3)
    photo = rng.uniform(0.3, 0.8, (120, 160, 3)).astype(np.float32)
    photo[50:60, 70:80] = 0.0  # a black patch inside the photo (e.g. a card's marker)
    m = cv2.getRotationMatrix2D((80, 60), 12, 1.0)
    warped = cv2.warpAffine(photo, m, (160, 120), flags=cv2.INTER_LINEAR, borderValue=0)
    outside = images.outside_warp(warped)
    corners = [outside[0, 0], outside[0, -1], outside[-1, 0], outside[-1, -1]]
    assert all(corners)
    assert not outside[52:58, 72:78].any()  # the inner black patch is kept
    inside = cv2.warpAffine(np.ones((120, 160), np.float32), m, (160, 120), flags=cv2.INTER_NEAREST) > 0
    deep_inside = cv2.erode(inside.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    assert not (outside & deep_inside).any()  # of the photo itself only the 2-px seam at its edge
    near_photo = cv2.dilate(inside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert outside[~near_photo].all()  # every pixel the photo does not reach
    filled = images.fill(warped, outside)
    assert (filled[outside] == images.NEUTRAL_GREY).all()
    assert (filled.max(axis=-1)[~outside] == images.to_uint8(warped).max(axis=-1)[~outside]).all()
    keep = np.zeros(outside.shape, bool)
    keep[:10, :10] = True
    assert not images.outside_warp(warped, keep)[:10, :10].any()


def test_aligned_before_and_after_have_no_black_corners(store, demo_id):
    from relief_app import images

    first, *_, last = store.photos(MAIN, demo_id, region=demo.DEMO_REGION)
    view = visits.compare_views(store, MAIN, demo_id, first.id, last.id)
    for pic in (view["baseline"], view["followup"]):
        border = np.concatenate([pic[0], pic[-1], pic[:, 0], pic[:, -1]])
        assert not (border.max(axis=-1) == 0).any()
    grey_after = (view["followup"] == images.NEUTRAL_GREY).all(axis=-1)
    grey_before = (view["baseline"] == images.NEUTRAL_GREY).all(axis=-1)
    assert grey_after.any()  # the demo's follow-up is rotated: its wedges are grey, in both pictures alike
    assert grey_before[grey_after].all()


def test_default_page_has_no_url_path_of_its_own():
    # Streamlit serves the default page at "/" and ignores its url_path: "/patients" would be "Page not found".
    import ast

    tree = ast.parse((REPO / "app.py").read_text())
    pages = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "Page"]
    defaults = [p for p in pages if any(k.arg == "default" for k in p.keywords)]
    assert len(defaults) == 2  # practitioner mode and visit mode
    assert all(not any(k.arg == "url_path" for k in p.keywords) for p in defaults)


def test_save_new_visit_stores_the_regions_with_the_measurement(store):
    p = new_patient(store, "Box Drawn")
    data = (SAMPLES / "week06.jpg").read_bytes()
    box = (300, 200, 1200, 900)
    a = visits.analyse_photo(data, "week06.jpg", regions={"scar patch": box})
    assert a.readable and set(a.regions) == {"scar patch"} and a.region_spec == {"scar patch": list(box)}
    # One box: the headline numbers are those of the box.
    assert a.regions["scar patch"]["roughness_index"] == pytest.approx(a.roughness_index, rel=1e-6)
    assert a.regions["scar patch"]["area_cm2"] > 0
    np.testing.assert_allclose(a.region_outlines["scar patch"].min(0), np.array(box[:2]) - 0.5, atol=1.0)
    saved = visits.save_new_visit(store, MAIN, p.id, date=dt.date(2025, 2, 1), region="left cheek",
                                  uploads=[(data, "week06.jpg")], analyses={a.sha256: a}, compare=False)
    [ph] = saved.visit.photos
    m = store.get_measurement(MAIN, p.id, ph.id, visits.analyzer.ALGORITHM_VERSION)
    assert visits.regions_from_metrics(m.metrics)["scar patch"]["roughness_index"] == pytest.approx(
        a.roughness_index)
    assert m.metrics["roughness_index"] == pytest.approx(a.roughness_index)
    assert ph.capture["regions"] == {"scar patch": list(box)}


def _upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader(key="upload_photos").set_value([(name, data, "image/jpeg")])
    return at


def _region_table(at: AppTest):
    """The per-photo region table (AppTest does not expose the key of a read-only st.dataframe)."""
    [table] = [d.value for d in at.dataframe
               if "Region" in d.value.columns and "Texture change (95 % interval)" not in d.value.columns]
    return table


def _aligned_region_table(at: AppTest):
    """The aligned region-by-region change table, with intervals."""
    [table] = [d.value for d in at.dataframe if "Texture change (95 % interval)" in d.value.columns]
    return table


def test_full_face_photo_shows_the_face_regions_and_saves_them(data_dir, store, demo_id, tmp_path):
    import skimage.data

    path = tmp_path / "astronaut.jpg"
    Image.fromarray(skimage.data.astronaut()).save(path, quality=92)
    data = path.read_bytes()
    p = new_patient(store, "Full Face")
    at = _to_new_visit(demo_id, p.id)
    if not _uploader_supported(at):
        pytest.skip("this Streamlit's AppTest cannot drive st.file_uploader")
    at.selectbox(key="visit_region").set_value("full face")
    at.checkbox(key="full_face").check()
    _upload(at, "astronaut.jpg", data).run()
    _no_exception(at)
    table = _region_table(at)
    assert {"left cheek", "right cheek", "forehead", "chin"} <= set(table["Region"])
    assert table.columns[1] == f"{text.metric_label('roughness_index')} ({text.metric_unit('roughness_index')})"
    assert any("Regions found on the face" in c for c in _image_captions(at))
    with pytest.raises(KeyError):
        at.slider(key="region_x")  # a face was found: no box to draw unless asked for
    at.checkbox(key=f"keep_{visits.sha256(data)[:12]}").check()  # a portrait, not a skin close-up: fails the gate
    at.button(key="save_visit").click().run()
    _no_exception(at)
    [visit] = store.visits(MAIN, p.id)
    m = store.get_measurement(MAIN, p.id, visit.photos[0].id, visits.analyzer.ALGORITHM_VERSION)
    stored = visits.regions_from_metrics(m.metrics)
    assert set(stored) == set(table["Region"])
    assert visit.photos[0].capture["regions"] == "face" and visit.photos[0].region == "full face"


@pytest.mark.parametrize("sample", ["week01.jpg", "week06.jpg"])
def test_region_drawn_by_hand_on_a_close_up_is_measured(data_dir, store, demo_id, sample):
    data = (SAMPLES / sample).read_bytes()
    at = _to_new_visit(demo_id)
    if not _uploader_supported(at):
        pytest.skip("this Streamlit's AppTest cannot drive st.file_uploader")
    at.checkbox(key="full_face").check()
    _upload(at, sample, data).run()
    _no_exception(at)
    if not any("No face found" in i for i in _plain_all(at.info)):
        # The face detector sees a "face" in some synthetic skin textures: the practitioner overrides it.
        assert sample != "week01.jpg"
        at.checkbox(key="region_manual").check().run()
    assert at.text_input(key="region_name").value == demo.DEMO_REGION  # the visit's region by default
    at.text_input(key="region_name").set_value("scar patch")
    for key, v in (("region_x", 10), ("region_y", 20), ("region_w", 60), ("region_h", 50)):
        at.slider(key=key).set_value(v)
    at.run()
    _no_exception(at)
    table = _region_table(at)
    assert list(table["Region"]) == ["scar patch"]
    assert any(c == "Drawn by hand" for c in _image_captions(at))
    # The box measured is the one drawn, in the photo's pixels.
    box = visits.box_from_percent(10, 20, 60, 50, visits.photo_size(data))
    a = visits.analyse_photo(data, sample, regions={"scar patch": box})
    assert table.iloc[0, 1] == pytest.approx(round(a.regions["scar patch"]["roughness_index"], 2))
    assert table.iloc[0, -1] == pytest.approx(round(a.regions["scar patch"]["area_cm2"], 2))


def test_compare_page_shows_the_regions_both_photos_have(data_dir, store, demo_id):
    p = new_patient(store, "Regions Compared")
    box = {"left cheek": (200, 150, 1400, 1000)}
    for day, name in ((dt.date(2025, 1, 6), "week00_baseline.jpg"), (dt.date(2025, 3, 31), "week12.jpg")):
        data = (SAMPLES / name).read_bytes()
        a = visits.analyse_photo(data, name, regions=box)
        visits.save_new_visit(store, MAIN, p.id, date=day, region="left cheek", uploads=[(data, name)],
                              analyses={a.sha256: a}, compare=False)
    at = _app().run()
    at.session_state["patient_id"] = p.id
    at.switch_page("views/compare.py").run()
    _no_exception(at)
    table = _region_table(at)
    assert list(table["Region"]) == ["left cheek"]
    before, after = (store.get_measurement(MAIN, p.id, ph.id, visits.analyzer.ALGORITHM_VERSION)
                     for ph in store.photos(MAIN, p.id))
    ri_b = before.metrics["region:left cheek:roughness_index"]
    ri_a = after.metrics["region:left cheek:roughness_index"]
    assert table.iloc[0, 1] == pytest.approx(round(ri_b, 2)) and table.iloc[0, 2] == pytest.approx(round(ri_a, 2))
    assert table.iloc[0, 3] == text.change_text(100 * (ri_a / ri_b - 1))
    assert table.iloc[0, 3].startswith("\u2212")  # ground truth: the week-12 scars are 30 % shallower
    aligned = _aligned_region_table(at)  # the baseline's region compared on the aligned pair, with its interval
    assert list(aligned["Region"]) == ["left cheek"]
    change = aligned.iloc[0, 1]
    assert change.startswith("\u2212") and " to " in change and aligned.iloc[0, 2] == "significantly smoother"
    at.selectbox(key="compare_region_metric").set_value("scar_density").run()
    _no_exception(at)
    assert _region_table(at).columns[1].endswith(f"({text.metric_unit('scar_density')})")



@pytest.mark.parametrize("name, px", [("照" * 120 + ".jpg", None), ("a.jpg", "abc"), ("a.jpg", 1e9)])
def test_odd_names_and_scales_give_a_one_line_error_not_a_traceback(name, px):
    a = visits.analyse_photo((SAMPLES / "week06.jpg").read_bytes(), name, px_per_mm=px)
    if px is None:
        assert a.readable  # a very long non-ASCII name is shortened, the photo still measured
    else:
        assert not a.readable and a.error and "\n" not in a.error


# ------------------------------------------------------------------------------------ report from the page
def test_progress_page_report_button_gives_the_pdf_with_the_pages_numbers(data_dir, store, demo_id):
    pypdf = pytest.importorskip("pypdf")
    at = _app().run()
    at.switch_page("views/progress.py").run()
    _no_exception(at)
    at.button(key="prepare_report").click().run()
    _no_exception(at)
    (pid, paper, _), pdf = at.session_state["report_pdf"]
    assert (pid, paper) == (demo_id, "A4") and pdf[:5] == b"%PDF-"
    words = " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    latest = [m.value for m in at.metric if m.label.startswith("Latest change")][0]
    assert latest in words
    assert any(e.action == "report" and e.patient_id == demo_id for e in store.audit.events(MAIN))
    at.button(key="prepare_export").click().run()
    _no_exception(at)
    assert at.session_state["export_zip"][1][:2] == b"PK"


def test_a_prepared_report_is_offered_only_while_it_is_what_the_page_shows(data_dir, store, demo_id):
    """A prepared PDF stayed on offer after a visit was saved, so a patient could take home a report without it
    (a product review). It is offered for its patient, paper and data only."""
    import streamlit as st

    at = _app().run()
    at.switch_page("views/progress.py").run()
    at.button(key="prepare_report").click().run()
    _no_exception(at)
    assert at.get("download_button") and at.get("download_button")[0].proto.label.startswith("Download the report")
    at.radio(key="report_paper").set_value("Letter").run()
    assert not [b for b in at.get("download_button") if "report" in b.proto.label]  # prepared on A4
    at.radio(key="report_paper").set_value("A4").run()
    assert [b for b in at.get("download_button") if "report" in b.proto.label]
    store.add_treatment(MAIN, demo_id, dt.date.today(), area="both cheeks")  # (beside the app: as another account)
    st.cache_data.clear()
    at.run()
    _no_exception(at)
    assert not [b for b in at.get("download_button") if "report" in b.proto.label]
    at.button(key="prepare_report").click().run()
    assert [b for b in at.get("download_button") if "report" in b.proto.label]


def test_delete_patient_from_the_page_removes_rows_and_photo_files(data_dir, store):
    p = new_patient(store, "To Delete")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(77).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(buf, "PNG")
    data = buf.getvalue()  # a photo of this patient only (identical bytes of two patients share one file)
    (photo,) = store.save_visit(MAIN, p.id, date="2025-01-01", photos=[NewPhoto(data, "w.jpg", "chin")]).photos
    path = store.photo_path(MAIN, p.id, photo.id)
    assert path.is_file()
    import streamlit as st

    st.cache_data.clear()
    at = _app().run()
    at.button(key=f"open_patient_{p.id}").click().run()
    assert at.button(key="delete_patient").disabled  # not without the confirmation
    at.checkbox(key="delete_patient_confirm").check().run()
    at.button(key="delete_patient").click().run()
    _no_exception(at)
    assert "Deleted To Delete" in _texts(at)
    assert p.id not in [x.id for x in store.list_patients(MAIN)]
    assert [e.patient_id for e in store.audit.events(MAIN, action="delete_patient")] == [p.id]
    assert not path.exists()  # the photo file went with the rows


def _noise_png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_delete_a_visit_from_the_progress_page_removes_its_photos_and_is_audited(data_dir, store, demo_id):
    """The consent note told practitioners to delete the visits a patient wants erased; no page could (a review)."""
    visits_before = store.visits(MAIN, demo_id)
    gone = visits_before[1]  # week 1
    paths = [store.photo_path(MAIN, demo_id, ph.id) for ph in gone.photos]
    assert paths and all(p.is_file() for p in paths)
    at = _app().run()
    at.session_state["patient_id"] = demo_id
    at.switch_page("views/progress.py").run()
    _no_exception(at)
    # what the New-visit page remembers of the photos it saved, this patient's and another's
    at.session_state["saved_uploads"] = {(demo_id, ("a" * 64,)): "15 Sep 2026", (demo_id + 1, ("b" * 64,)): "x"}
    at.session_state["saved_photos"] = {(demo_id, "a" * 64): ("15 Sep 2026", ()), (demo_id + 1, "b" * 64): ("x", ())}
    at.selectbox(key="delete_visit_choice").set_value(gone.id).run()
    assert at.button(key="delete_visit").disabled  # not without the confirmation
    at.checkbox(key=f"confirm_delete_visit_{gone.id}").check().run()
    at.button(key="delete_visit").click().run()
    _no_exception(at)
    assert f"Deleted the visit of {gone.date:%d %b %Y}" in _texts(at)
    assert [v.id for v in store.visits(MAIN, demo_id)] == [v.id for v in visits_before if v.id != gone.id]
    assert not any(p.exists() for p in paths)
    assert [e.patient_id for e in store.audit.events(MAIN, action="delete_visit")] == [demo_id]
    # the same photos can be saved again under the right date: the New-visit page forgot them (a review)
    assert list(at.session_state["saved_uploads"]) == [(demo_id + 1, ("b" * 64,))]
    assert list(at.session_state["saved_photos"]) == [(demo_id + 1, "b" * 64)]


def test_of_two_visits_of_one_day_and_region_the_one_chosen_is_deleted(data_dir, store):
    """A photo retaken and saved again makes two visits of one day and region; their labels were equal, and choosing
    the first deleted the second (a review)."""
    p = new_patient(store, "Same Day")
    first, second = (store.save_visit(MAIN, p.id, date="2025-03-01", photos=[NewPhoto(
        _noise_png(k), f"{k}.png", "chin")]) for k in (1, 2))
    import streamlit as st

    st.cache_data.clear()
    at = _app().run()
    at.session_state["patient_id"] = p.id
    at.switch_page("views/progress.py").run()
    _no_exception(at)
    box = at.selectbox(key="delete_visit_choice")
    assert len(set(box.options)) == len(box.options) == 2  # two labels, told apart
    box.set_value(first.id).run()
    at.checkbox(key=f"confirm_delete_visit_{first.id}").check().run()
    at.button(key="delete_visit").click().run()
    _no_exception(at)
    assert [v.id for v in store.visits(MAIN, p.id)] == [second.id]


def test_a_viewer_is_offered_no_visit_deletion(data_dir, store, demo_id):
    viewer = store.accounts.add(Actor.system(), "viewer_del", role="viewer", password="a long password 12",
                                clinic="MAIN")
    at = _app(signed_in=viewer.id).run()
    at.session_state["patient_id"] = demo_id
    at.switch_page("views/progress.py").run()
    _no_exception(at)
    assert at.selectbox(key="progress_region").options  # the page ran to its end ...
    with pytest.raises(KeyError):  # ... without the deletion
        at.button(key="delete_visit")


def test_every_quality_code_has_words_for_the_page():
    """The New-visit page showed the gate's internal codes ("no_texture, clipping"); each has words now."""
    import re

    from analyzer import quality

    codes = set(re.findall(r'flag\(\s*"(\w+)"', Path(quality.__file__).read_text()))
    assert codes and codes <= set(text.QUALITY_LABELS), codes - set(text.QUALITY_LABELS)
    assert text.quality_words(["blur", "glare"]) == "out of focus, glare"


def test_a_new_patient_gets_no_region_preselected(data_dir, store, demo_id):
    """A new patient's photos were saved under "forehead" when nobody chose the region."""
    fresh = new_patient(store, "No photos yet").id
    at = _to_new_visit(demo_id, fresh)
    assert at.selectbox(key="visit_region").value is None
    at = _to_new_visit(demo_id)  # a known patient: their region first
    assert at.selectbox(key="visit_region").value == demo.DEMO_REGION


def test_a_refused_new_patient_form_keeps_what_was_typed(data_dir, store, demo_id):
    at = _app().run()
    at.text_input(key="new_patient_name").input("Second Demo")
    at.text_input(key="new_patient_code").input(demo.DEMO_CODE)  # taken
    at.button(key="create_patient").click().run()
    _no_exception(at)
    assert any("already exists" in e.value for e in at.error)
    assert at.error[0].value[:1].isupper()  # one sentence, starting with a capital
    assert at.text_input(key="new_patient_name").value == "Second Demo"


def test_before_after_is_the_baseline_and_the_latest_visits_photo_that_counts():
    from types import SimpleNamespace as P

    # An unmeasurable first visit (not the baseline), the baseline, a follow-up: not photos[0] and photos[-1].
    points = [P(photo_id=7, is_baseline=False), P(photo_id=3, is_baseline=True), P(photo_id=9, is_baseline=False)]
    assert visits.before_after_ids(points) == (3, 9)
    assert visits.before_after_ids(points[:2]) is None  # nothing after the baseline
    assert visits.before_after_ids([P(photo_id=1, is_baseline=False)]) is None  # no baseline
    assert visits.before_after_ids([]) is None


# ------------------------------------------------------------------------- photos not taken alike: said everywhere
@pytest.fixture
def not_alike_id(store, skin_make):
    """A patient whose follow-up was lit from elsewhere (60° turned lamp) and whose scars are half as deep: the
    comparison's consistency check fails, whatever its verdict."""
    import cv2

    from analyzer import synth

    p = new_patient(store, "Lamp Moved", code="LAMP-1")
    base = synth.Capture(out_px=(900, 600), field_mm=30.0)
    moved = dataclasses.replace(base, light_azimuth_deg=base.light_azimuth_deg + 60.0)
    for day, skin, cap, seed in ((dt.date(2025, 1, 6), skin_make(4, 0.7), base, 1),
                                 (dt.date(2025, 3, 31), skin_make(4, 0.7, depth=0.5), moved, 2)):
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(synth.render(skin, cap, seed=seed), cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, 95])
        data, name = buf.tobytes(), f"{day}.jpg"
        a = visits.analyse_photo(data, name, px_per_mm=cap.px_per_mm)
        visits.save_new_visit(store, MAIN, p.id, date=day, region="left cheek", uploads=[(data, name)],
                              analyses={a.sha256: a}, px_per_mm=cap.px_per_mm)
    [point] = [q for q in store.progress(MAIN, p.id, "left cheek", algorithm_version=visits.analyzer.ALGORITHM_VERSION)
               if not q.is_baseline]
    assert point.caveats and any("light's direction turned" in c for c in point.caveats), point
    return p.id


def test_photos_not_taken_alike_are_said_on_compare_progress_visit_mode_and_report(data_dir, store, not_alike_id):
    """The consistency check (light, distance, quality) was computed and stored but shown nowhere: a lamp moved
    between visits gave a verdict with no word of it."""
    pypdf = pytest.importorskip("pypdf")
    at = _app().run()  # the patients list: the latest change, with the mark
    [row] = [m for m in _plain_all(at.markdown) if "significantly" in m and "left cheek" in m and "LAMP" not in m
             and "photos not taken alike" in m]
    demo_rows = [m for m in _plain_all(at.markdown) if "(left cheek)" in m and "photos not taken alike" not in m]
    assert demo_rows  # the demo course, taken alike, has no mark
    at.session_state["patient_id"] = not_alike_id
    at.switch_page("views/compare.py").run()
    _no_exception(at)
    [warn] = [w for w in _plain_all(at.warning) if text.NOT_ALIKE_HEADING in w]
    assert "light's direction turned" in warn
    at.switch_page("views/progress.py").run()
    _no_exception(at)
    [table] = [d.value for d in at.dataframe if "Photos taken alike" in d.value.columns]
    assert table["Photos taken alike"].iloc[0] == "" and table["Photos taken alike"].iloc[-1].startswith("no — the light")
    [warn] = [w for w in _plain_all(at.warning) if text.NOT_ALIKE_HEADING in w]  # under the latest change too
    assert "light's direction turned" in warn
    [spec] = _plotly_specs(at)
    assert spec["data"][0]["marker"]["symbol"][-1].startswith("diamond")
    at.button(key="prepare_report").click().run()
    _no_exception(at)
    words = " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(at.session_state["report_pdf"][1])).pages)
    words = re.sub(r"\s+", " ", words)
    assert text.NOT_ALIKE_HEADING.split(",")[0] in words and "direction turned" in words
    # the patient's own page: a significant change is not stated as settled
    token, _ = store.links.issue(MAIN, not_alike_id)
    at = _app(signed_in=None, link=token).run()
    _no_exception(at)
    last = store.progress(MAIN, not_alike_id, "left cheek", algorithm_version=visits.analyzer.ALGORITHM_VERSION)[-1]
    assert last.significant and last.change_pct < 0  # (half-deep scars: smoother, whatever the lamp did)
    assert "your practitioner will go through this result with you" in _texts(at)


def test_photos_taken_alike_get_no_such_warning(data_dir, demo_id):
    at = _app().run()
    at.switch_page("views/compare.py").run()
    _no_exception(at)
    assert not any(text.NOT_ALIKE_HEADING in w for w in _plain_all(at.warning))


def test_a_link_reads_the_change_computed_for_its_page_when_none_is_stored(data_dir, store, demo_id):
    """A link stores nothing: after an algorithm upgrade (no comparison stored for the new version) visit mode
    said "could not be compared" above before/after photos it had just lined up."""
    import sqlalchemy as sa

    with store.engine.begin() as c:
        c.execute(sa.text("DELETE FROM comparisons"))
    token, _ = store.links.issue(MAIN, demo_id)
    at = _app(signed_in=None, link=token).run()
    _no_exception(at)
    shown = _texts(at)
    assert "smoother than at your first visit (range" in shown and "could not be compared" not in shown
    with store.engine.begin() as c:
        assert c.execute(sa.text("SELECT count(*) FROM comparisons")).scalar() == 0  # computed, not stored


def test_every_measures_series_carries_how_the_photos_differed(store, demo_id):
    points = store.progress(MAIN, demo_id, "left cheek")
    marked = [dataclasses.replace(p, caveats=() if p.is_baseline else ("the light's direction turned by 60°",))
              for p in points]
    for metric in ("roughness_index", "erythema_index", "pore_density"):
        series = charts.progress_series(marked, metric)
        assert series[0].caveats == () and all(s.caveats for s in series[1:]), metric

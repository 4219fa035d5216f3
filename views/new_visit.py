"""New visit: photos of one region (+ a treatment), checked for quality at once, saved all-or-nothing, compared."""
import datetime as dt

import streamlit as st

from analyzer.measurement import GRAYSCALE_WARNING, MAX_PX_PER_MM

from relief_app import images, services
from relief_app.text import (change_with_interval, finite, metric_unit, not_alike_markdown, quality_words,
                             region_rows, significance_text)
from relief_app.text import md_escape as esc
from relief_app.text import table_rows
from relief_app.visits import DEFAULT_FIELD_MM, box_from_percent, sha256
from storage import comparison_caveats

FULL_FACE = "full face"  # the visit region offered for full-face photos

for key, default in (("patient_id", None), ("saved_uploads", {}), ("saved_photos", {}), ("last_save", None)):
    if key not in st.session_state:
        st.session_state[key] = default

pid, _, known = services.patient_page("New visit")
if not services.can("write"):
    st.info("Your role can look at patients but not record visits; ask a practitioner.")
    st.stop()
with services.show_errors():
    consent = services.consent_status(pid)
if not consent.clinical_granted:
    st.warning("Record the patient's consent to clinical photography first (on the **Patients** page, under "
               "Consent). No photo is saved without it.")
    st.stop()

# --- the visit -----------------------------------------------------------------------------------------------
c1, c2, c3 = st.columns([2, 1, 1])
with c1:
    options = list(known) + [r for r in (*services.standard_regions(), FULL_FACE) if r not in known]
    # A new patient has no region yet: none is preselected (photos saved under "forehead" by default were
    # mistakes); a known patient's most photographed region comes first.
    picked = st.selectbox("Face region", options, key="visit_region", index=0 if known else None,
                          placeholder="Choose the region photographed",
                          help="Regions already photographed for this patient come first.")
    other = st.text_input("…or type another region", key="visit_region_other", placeholder="e.g. jaw line",
                          max_chars=services.TEXT_LIMITS["region"])
    region = (other or picked or "").strip()
with c2:
    visit_date = st.date_input("Date of the visit", value=dt.date.today(), key="visit_date",
                               max_value=dt.date.today() + dt.timedelta(days=1))
with c3:
    px_per_mm = st.number_input(
        "Scale, px/mm (optional)", min_value=0.0, max_value=MAX_PX_PER_MM, value=0.0, step=1.0, key="px_per_mm",
        help="Pixels per millimetre of the photos, if known. 0 = use the Relief calibration card when it is in "
             f"the photo, otherwise assume the photo's long side spans {DEFAULT_FIELD_MM:.0f} mm.")
px = float(px_per_mm) or None

treated = st.checkbox("Treatment done at this visit?", key="treatment_done")
treatment = None
if treated:
    t1, t2 = st.columns([1, 2])
    depth = t1.number_input("Needle depth (mm)", min_value=0.0, max_value=3.0, value=1.5, step=0.25,
                            key="needle_depth_mm")
    area = t2.text_input("Treated area", value=region, key="treatment_area",
                         max_chars=services.TEXT_LIMITS["treatment_area"])
    tnotes = st.text_area("Treatment notes", key="treatment_notes", height=70,
                          placeholder="passes, serum, device settings, reactions…")
    treatment = {"procedure": "micro-needling", "needle_depth_mm": depth, "area": area, "notes": tnotes}
notes = st.text_area("Visit notes", key="visit_notes", height=70)

# --- photos -----------------------------------------------------------------------------------------------
up_col, ghost_col = st.columns([3, 2])
with ghost_col:
    base = services.baseline_photo(pid, region) if region else None
    if base is not None:
        thumb = services.thumbnail(base, 480)
        if thumb is not None:
            st.html(images.figure(images.ghost(thumb, opacity=0.5),
                                  caption=f"Baseline of {region} ({base.visit_date:%d %b %Y}) at 50 % — frame the "
                                          "new photo the same way: same distance, angle and light."))
    elif region:
        st.info(f"No photo of {esc(region)} yet: this visit's photo becomes its baseline.")
with up_col:
    files = st.file_uploader(
        "Photos of the region", accept_multiple_files=True, key="upload_photos",
        type=["jpg", "jpeg", "png", "webp", "heic", "heif", "tif", "tiff"],
        help="Close-ups of the skin, in focus, with the same side light as at the first visit and no flash "
             "glare; the camera's own file, with HDR, filters and automatic enhancement off. Put the Relief card "
             "beside the area for sizes in mm (its grey steps also show a change of contrast).")
    full_face = st.checkbox(
        "Full-face photo", key="full_face",
        help="Find the face and measure the forehead, cheeks, chin and temples one by one (left and right are "
             f"the patient's). Save such photos under a region like “{FULL_FACE}” so they are compared with "
             "each other. Without a face in the photo, draw the region by hand.")

uploads, seen = [], set()
for f in files or []:
    data = f.getvalue()
    if sha256(data) not in seen:  # the same file twice is one photo
        seen.add(sha256(data))
        uploads.append((data, f.name))
if not uploads:
    st.info("Upload one or more photos to analyse them.")
    st.stop()

analyses, bad = {}, []
with st.status(f"Analysing {len(uploads)} photo(s)…", expanded=False) as status:
    bar = st.progress(0.0)
    for i, (data, name) in enumerate(uploads):
        a = services.analyse_upload(data, name, px, regions="face" if full_face else None)
        analyses[a.sha256] = a
        bar.progress((i + 1) / len(uploads), text=esc(name))
    status.update(label=f"Analysed {len(uploads)} photo(s)", state="complete")

# --- full face: regions found on the face, or one region drawn by hand ------------------------------------
boxes = {}  # sha256 -> the box drawn by hand (photo pixels), for the photos measured with it
box_name = region
if full_face:
    readable = [a for a in analyses.values() if a.readable]
    no_face = [a for a in readable if a.no_face]
    by_hand = bool(no_face)
    if no_face:
        st.info("No face found in " + ", ".join(esc(a.filename) for a in no_face) + " — draw the region to measure "
                "by hand below (in % of the photo), or photograph the whole face from the front.")
    elif readable:
        by_hand = st.checkbox("The regions are wrong — draw the region by hand", key="region_manual",
                              help="For a close-up, or when the outlines do not sit on the face.")
    if by_hand:
        n1, n2, n3, n4, n5 = st.columns([2, 1, 1, 1, 1])
        box_name = n1.text_input("Region name", value=region, key="region_name").strip() or region or "region"
        bx = n2.slider("Left edge (%)", 0, 95, 25, key="region_x")
        by = n3.slider("Top edge (%)", 0, 95, 25, key="region_y")
        bw = n4.slider("Width (%)", 5, 100, 50, key="region_w")
        bh = n5.slider("Height (%)", 5, 100, 50, key="region_h")
        st.caption("The box is drawn on each photo below and measured on its own; width and height stop at the "
                   "photo's edge.")
        for a in (no_face or readable):
            if a.size is None:
                continue
            data = next(d for d, _ in uploads if sha256(d) == a.sha256)
            box = box_from_percent(bx, by, bw, bh, a.size)
            boxes[a.sha256] = box
            analyses[a.sha256] = services.analyse_upload(data, a.filename, px, regions={box_name: box})

keep = []
ri_unit = metric_unit("roughness_index")
# Photos this session saved at a visit of this patient, still in the upload box beside new ones (the box keeps its
# files when the page is opened again for the next visit): left out, with the reason, instead of a refusal at
# "Save". The very list just saved is the confirmation below, not a mistake.
upload_list = (pid, tuple(sorted(sha256(d) for d, _ in uploads)))
for data, name in uploads:
    a = analyses[sha256(data)]
    st.markdown(f"#### {esc(a.filename)}")
    saved_at, saved_with = st.session_state["saved_photos"].get((pid, a.sha256), (None, None))
    if saved_at and saved_with != upload_list:  # saved from another list of uploads: an earlier visit's
        st.warning(f"Saved already at the visit of {saved_at}: left out of this visit — remove it from the list "
                   "above.")
        continue
    img_col, info_col = st.columns([2, 3])
    drawn_by_hand = a.sha256 in boxes
    outlines = a.region_outlines or ({box_name: images.box_outline(boxes[a.sha256])} if drawn_by_hand else {})
    if outlines and a.size:
        # Face regions: the face cut out of a finer preview; a box drawn by hand: the whole photo, to place it.
        thumb = services.thumbnail_of_bytes(data, 480 if drawn_by_hand else 960)
        if thumb is not None:
            img_col.html(images.figure(images.draw_regions(thumb, outlines, scale=thumb.shape[1] / a.size[0],
                                                           crop=None if drawn_by_hand else 0.35),
                                       caption="Drawn by hand" if drawn_by_hand else
                                       "Regions found on the face (left and right are the patient's)"))
            img_col.caption(" · ".join(f":{colour}[■ {esc(n)}]" for n, (colour, _) in
                                       zip(outlines, images.region_colours(len(outlines)))))
    else:
        thumb = services.thumbnail_of_bytes(data, 480)
        if thumb is not None:
            img_col.html(images.figure(thumb))
    with info_col:
        if not a.readable:
            st.error(esc(a.error, limit=None))
            bad.append(a)
            continue
        black_and_white = GRAYSCALE_WARNING in a.warnings
        if a.quality_ok and not black_and_white:
            st.success("Quality: good enough to measure.")
        elif a.quality_ok:  # sharp and well exposed, but what it measures is not what a colour photo measures
            st.warning("Black-and-white photo: retake it in colour if you can — colour marks count as relief in it, "
                       "so its change against colour photos is not the change of the relief alone.")
        else:
            st.warning("Quality: retake advised — " + quality_words(a.codes) + ".")
        for w in a.warnings:
            st.markdown(f"- {esc(w, limit=None)}")  # (a warning may quote a typed region name)
        ri = f"{a.roughness_index:.2f} {ri_unit}" if finite(a.roughness_index) else "not measurable"
        st.markdown(f"Scale: **{a.scale_label}** ({a.px_per_mm:.1f} px/mm) · roughness index **{ri}**"
                    + (" (of the regions together)" if a.regions else ""))
        if st.checkbox("Keep this photo" if a.quality_ok else "Keep it anyway", value=a.quality_ok,
                       key=f"keep_{a.sha256[:12]}"):
            keep.append((data, name))
    if a.regions:
        st.dataframe(table_rows(region_rows(a.regions)), hide_index=True, key=f"regions_{a.sha256[:12]}")

# The photos alone (not the date or region): the same photos saved again under another date would read "no
# change" at that date (storage refuses it too).
fingerprint = (pid, tuple(sorted(sha256(d) for d, _ in keep)))
already = st.session_state["saved_uploads"].get(fingerprint)
if already:
    st.info(f"These photos were saved as the visit of {already}. Upload new photos for another visit.")

if st.button("Save visit", key="save_visit", type="primary", disabled=bool(already)):
    if bad:
        st.error(f"{esc(bad[0].error)}. Nothing was saved: remove the unreadable file(s) from the list first.")
    elif not keep:
        st.error("No photo is kept; tick “Keep” for at least one photo. Nothing was saved.")
    else:
        with services.show_errors():
            with st.spinner("Saving and comparing with the baseline…"):
                saved = services.save_visit(pid, date=visit_date, region=region, uploads=keep,
                                            analyses=analyses, treatment=treatment, notes=notes, px_per_mm=px)
        st.session_state["saved_uploads"][fingerprint] = f"{saved.visit.date:%d %b %Y}"
        for d, _ in keep:  # (with the list they were saved from, unticked photos too: the confirmation below)
            st.session_state["saved_photos"][(pid, sha256(d))] = (f"{saved.visit.date:%d %b %Y}", upload_list)
        st.session_state["last_save"] = saved
        st.rerun()

saved = st.session_state["last_save"]
if saved is not None and already and saved.visit.patient_id == pid:
    st.success(f"Saved the visit of {saved.visit.date:%d %b %Y} with {len(saved.visit.photos)} photo(s).")
    for o in saved.comparisons:
        if o.comparison is not None:
            c = o.comparison
            st.metric(f"{esc(o.photo.filename)}: texture vs baseline ({o.baseline.visit_date:%d %b %Y})",
                      change_with_interval(c.change_pct, c.ci_low, c.ci_high))
            st.caption(f"{significance_text(c.significant, c.change_pct).capitalize()} (smallest detectable change "
                       f"{c.mdc_pct:.0f} %). Negative = smoother.")
            differences = comparison_caveats(c.result)
            if differences:  # the one moment a retake is still possible
                st.warning(not_alike_markdown(differences))
        elif o.error:
            st.warning(f"{esc(o.photo.filename)}: saved, but not compared with the baseline — "
                       f"{esc(o.error, limit=None)}")
        else:
            st.caption(f"{esc(o.photo.filename)} is the baseline of {esc(o.photo.region)}.")
    st.page_link("views/compare.py", label="Open the comparison", icon=":material/compare:")

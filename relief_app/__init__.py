"""App-side glue of the Relief dashboard (everything that is not a page layout).

The pages in ``views/`` only lay out; they call into this package, which calls :mod:`analyzer` (the
library) and :mod:`storage` (the ``Store`` service API) and nothing else.

Modules
-------
text      plain-language formatting: changes ("−18 % (−24 to −12 %)"), the visit-mode sentence, metric labels
          read from ``analyzer.METRICS``. No Streamlit.
visits    analysing uploads, saving a visit all-or-nothing, comparing stored photos. No Streamlit.
images    thumbnails, the 50 % "ghost" of the baseline, before/after overlays. No Streamlit.
charts    plotly figures: progress over weeks, difference map. No Streamlit.
demo      seeding the "Demo patient" from ``sample_images/`` on a first start (``RELIEF_DEMO=0`` turns it off).
reportdata  the one reader of storage for the PDF report and the data export (``gather_report``,
          ``gather_export``; each store call marked ``# actor:``). No Streamlit.
report    the progress report as PDF bytes (fpdf2; chart drawn with matplotlib): pure function of ReportData.
export    CSV files and an xlsx workbook, optionally de-identified (keyed pseudonyms, days instead of dates).
__main__  ``python -m relief_app report|export``.
services  the Streamlit side: the cached store (``st.cache_resource``), cached reads and analyses
          (``st.cache_data`` keyed by photo SHA-256 + ``analyzer.ALGORITHM_VERSION``), error display.

Visit mode
----------
``/?mode=visit&patient=<id>`` opens the dashboard for a patient to look at during a consultation: one page
(``views/visit_mode.py``) with that patient's progress in plain language, no sidebar, no patient list and no
navigation. A session that opened in visit mode stays locked to that patient. This is a presentation mode for
a screen in the consultation room, not access control: anyone who can reach the server can open any URL.

Face regions
------------
"Full-face photo" on the New visit page measures each photo with ``analyzer.measure(..., regions="face")``
(forehead, cheeks, chin, temples; patient's left/right); without a face the practitioner draws one box by hand
(``regions={name: (x, y, w, h)}``). The per-region numbers are stored with the photo's measurement as flat float
metrics ``"region:<region name>:<metric>"`` (e.g. ``"region:left cheek:roughness_index"``; see
:func:`relief_app.visits.flatten_regions`), so everything that reads metrics by name keeps working; what was
asked (``"face"`` or the boxes) is kept in the photo's ``capture["regions"]`` for re-measurements.

Stable widget keys (for AppTest and browser tests)
--------------------------------------------------
sidebar      ``sidebar_patient`` (patient picker)
Patients     ``patient_search``; form ``new_patient_name``, ``new_patient_code``, ``new_patient_notes``,
             submit ``create_patient``; per row ``open_patient_<id>``; edit form ``edit_patient_name``,
             ``edit_patient_code``, ``edit_patient_notes``, submit ``update_patient``
New visit    ``visit_region``, ``visit_region_other``, ``visit_date``, ``visit_notes``, ``treatment_done``,
             ``needle_depth_mm``, ``treatment_area``, ``treatment_notes``, ``px_per_mm``, ``upload_photos``,
             ``full_face``; region by hand ``region_manual`` (shown when a face was found), ``region_name``,
             ``region_x``, ``region_y``, ``region_w``, ``region_h`` (percent of the photo); per photo
             ``keep_<sha256[:12]>`` and table ``regions_<sha256[:12]>``; ``save_visit``
Progress     ``progress_region``, ``progress_metric``, chart ``progress_chart``
Compare      ``compare_region``, ``compare_a``, ``compare_b``, ``overlay_opacity``, chart ``difference_map``,
             ``compare_region_metric``, tables ``scar_table``, ``region_table``
Visit mode   ``visit_region_pick``, chart ``visit_chart``
"""

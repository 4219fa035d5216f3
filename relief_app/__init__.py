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
auth      sign-in, sign-out, idle timeout, patient links (the Streamlit side).
sharing   patient-link URL and its QR code (segno). No Streamlit.
demo      seeding the "Demo patient" from ``sample_images/`` on a first start (``RELIEF_DEMO=0`` turns it off).
reportdata  the one reader of storage for the PDF report and the data export (``gather_report``,
          ``gather_export``; each store call marked ``# actor:``). No Streamlit.
report    the progress report as PDF bytes (fpdf2; chart drawn with matplotlib): pure function of ReportData.
export    CSV files and an xlsx workbook, optionally de-identified (keyed pseudonyms, days instead of dates).
__main__  ``python -m relief_app report|export``.
services  the Streamlit side: the cached store (``st.cache_resource``), cached reads and analyses
          (``st.cache_data`` keyed by photo SHA-256 + ``analyzer.ALGORITHM_VERSION``), error display.

Who is acting
-------------
:mod:`relief_app.auth` (``gate()``, first thing in ``app.py``) decides who is acting on every page run: an account
signed in through the form, or a patient link ``/?link=<token>`` that opens only visit mode for one patient. It
leaves a :class:`storage.Actor` in ``st.session_state["actor"]``; :mod:`relief_app.services` passes it to every
storage call (and includes it in every cache key), and storage scopes every read and write by it. Nothing here
decides what an actor may see.

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
             ``edit_patient_code``, ``edit_patient_notes``, submit ``update_patient``; ``delete_patient_confirm``,
             ``delete_patient``
New visit    ``visit_region``, ``visit_region_other``, ``visit_date``, ``visit_notes``, ``treatment_done``,
             ``needle_depth_mm``, ``treatment_area``, ``treatment_notes``, ``px_per_mm``, ``upload_photos``,
             ``full_face``; region by hand ``region_manual`` (shown when a face was found), ``region_name``,
             ``region_x``, ``region_y``, ``region_w``, ``region_h`` (percent of the photo); per photo
             ``keep_<sha256[:12]>`` and table ``regions_<sha256[:12]>``; ``save_visit``
Progress     ``progress_region``, ``progress_metric``, chart ``progress_chart``; ``delete_visit_choice``,
             per visit ``confirm_delete_visit_<id>``, ``delete_visit``
Compare      ``compare_region``, ``compare_a``, ``compare_b``, ``overlay_opacity``, chart ``difference_map``,
             ``compare_region_metric``, tables ``scar_table``, ``region_table``
Visit mode   ``visit_region_pick``, chart ``visit_chart``
Sign-in      ``signin_username``, ``signin_password``, ``signin_submit``, single sign-on ``signin_sso``,
             ``signin_sso_logout``; sidebar ``sign_out``; one-time password
             change ``pw_old``, ``pw_new``, ``pw_again``, ``pw_submit``
Consent      ``consent_kind``, ``consent_decision``, ``consent_date``, ``record_consent``
Links        ``link_until``, ``issue_link``, per link ``revoke_link_<id>``
Reports      ``report_paper``, ``prepare_report``, ``download_report``, ``prepare_export``, ``download_export``
Admin        ``accounts_table``, ``new_account_name``, ``new_account_role``, ``new_account_password``,
             ``new_account_email``, ``create_account``, ``manage_account``, ``toggle_account``,
             per account ``revoke_links_<name>``, ``reset_password_value``,
             ``reset_password_submit``, ``audit_since``, ``audit_action``, ``audit_account``, ``audit_table``,
             ``export_deidentify``, ``prepare_clinic_export``, ``download_clinic_export``
"""

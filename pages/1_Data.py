"""Data: look at the chosen dataset (samples per class, counts per split, skipped files),
choose or download another, upload a .zip, or build one with the webcam."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from tlviz.plots import counts_figure
from ui import cache, sidebar, state, widgets, workspace
from ui.text import esc

TABS = ["Look at the data", "All datasets", "Upload a .zip", "Webcam dataset"]
choices = sidebar.choices()
st.title("Data")
if widgets.show_opened():  # just uploaded or saved: show what was opened
    st.session_state["data_tab"] = TABS[0]
tab_look, tab_all, tab_zip, tab_cam = st.tabs(TABS, key="data_tab", on_change="rerun")

# ----------------------------------------------------------------------------- look
with tab_look:
    ds = widgets.load_dataset(choices, link=False)
    if ds is None:
        st.info("Pick another dataset in the sidebar, or add one with the other tabs.")
    else:
        counts = ds.counts()
        cols = st.columns(2 + len(counts.columns))
        cols[0].metric("images", f"{len(ds):,}")
        cols[1].metric("classes", ds.num_classes)
        for col, split in zip(cols[2:], counts.columns):
            col.metric(split, f"{int(counts[split].sum()):,}")
        for w in ds.warnings:
            st.warning(esc(w), icon=":material/warning:")

        st.subheader("Samples per class")
        splits = ["all", *ds.split_names]
        c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
        split = c1.segmented_control("From split", splits, **state.widget("data_split", "all", splits))
        per_class = 6 if choices.presenter else c2.slider(
            "Images per class", 3, 16, **state.widget("data_n", 8, bounds=(3, 16)))
        if c3.button("Shuffle", icon=":material/shuffle:", key="data_shuffle"):
            state.set("data_sample_seed", state.get("data_sample_seed", 0) + 1, default=0)
        shown = list(range(ds.num_classes))
        if ds.num_classes > 12:
            names = st.multiselect("Classes", ds.classes, default=ds.classes[:12],
                                   key="data_classes")
            shown = [ds.classes.index(n) for n in names]
        rng = np.random.default_rng(state.get("data_sample_seed", 0))
        pool = ds.indices(None if split in (None, "all") else split)
        for k in shown:
            idx = pool[ds.labels[pool] == k]
            pick = rng.choice(idx, min(per_class or 8, len(idx)), replace=False) if len(idx) else idx
            st.markdown(f"**{esc(ds.classes[k])}** · {len(idx)} images")
            if len(pick):
                st.image([cache.thumbnail(choices.dataset, int(i), 96, choices.seed) for i in pick],
                         width=96)
            else:
                st.caption("no images in this split")

        st.subheader("Counts per class and split")
        left, right = st.columns([1, 2])
        left.dataframe(counts, width="stretch")
        right.plotly_chart(counts_figure(counts), width="stretch", key="data_counts")

        st.subheader("Skipped files")
        if ds.skipped:
            root = str(ds.root) + "/" if ds.root else ""
            st.dataframe(pd.DataFrame([(p.removeprefix(root), r) for p, r in ds.skipped],
                                      columns=["file", "reason"]), hide_index=True, width="stretch")
        else:
            st.caption("None: every file was a readable image.")

# ----------------------------------------------------------------------------- all datasets
with tab_all:
    st.caption("Built in, found in the data directory, downloadable, or made by you.")
    for info in cache.datasets():
        c1, c2, c3 = st.columns([3, 5, 2], vertical_alignment="center")
        c1.markdown(f"**{esc(info.name)}**  \n{'available' if info.ok else 'not on this machine'}"
                    f" · {info.kind}")
        c2.caption(esc(info.description if info.ok else info.why))
        if info.ok:
            if c3.button("Use", key=f"use_{info.name}", disabled=info.name == choices.dataset):
                widgets.use_dataset(info.name)
        elif info.downloadable and c3.button("Download", key=f"dl_{info.name}",
                                             icon=":material/download:"):
            from tlviz.data import DatasetError, get_dataset_info

            try:
                with widgets.progress(f"Downloading {info.name}") as cb:
                    get_dataset_info(info.name).download(cb)
                widgets.use_dataset(info.name)
            except DatasetError as e:
                st.error(esc(e))
            except Exception as e:  # noqa: BLE001 - the network, torchvision: the page survives
                st.error(f"Download failed ({type(e).__name__}): {esc(e)}")

# ----------------------------------------------------------------------------- zip upload
with tab_zip:
    st.markdown("A `.zip` of one folder per class (`ants/…`, `bees/…`), optionally inside "
                "`train/`, `val/`, `test/`. It is checked and unpacked safely, then kept as a "
                "dataset you can reopen from the sidebar.")
    upload = st.file_uploader("Dataset .zip", type=["zip"], key="data_zip")
    if upload is not None and st.button("Open this .zip", type="primary", key="data_zip_open") \
            and workspace.writable("upload datasets"):
        from tlviz import config
        from tlviz.data import DatasetError, load_dataset
        from tlviz.safeio import BadArchive, sanitize_name
        from tlviz.workspaces import QuotaExceeded

        name = sanitize_name(Path(upload.name).stem)
        try:
            with tempfile.TemporaryDirectory(dir=config.home_dir()) as tmp:
                path = Path(tmp) / f"{name}.zip"
                path.write_bytes(upload.getvalue())
                with st.spinner("Checking and unpacking…"):
                    # refuses an archive with nothing usable (and keeps nothing of it)
                    ds = load_dataset(path)
            root = Path(ds.root)
            folder = next(p for p in (root, *root.parents) if p.parent == config.user_datasets_dir())
            widgets.use_dataset(folder.name, opened=ds)
        except (BadArchive, DatasetError, QuotaExceeded) as e:
            st.error(esc(e))  # the message names the archive, or the workspace limit
        except StopIteration:
            st.error("The archive was unpacked outside the user datasets folder; not used.")
        except Exception as e:  # noqa: BLE001 - an untrusted upload: the page survives it
            st.error(f"Could not open {esc(upload.name)} ({type(e).__name__}): {esc(e)}")

# ----------------------------------------------------------------------------- webcam
with tab_cam:
    st.markdown("Teachable-Machine style: name your classes, take a few photos of each (or add "
                "image files), save. 10–30 photos per class are plenty with a frozen backbone.")
    photos: dict[int, dict[str, bytes]] = st.session_state.setdefault("cam_photos", {})
    seen: set[str] = st.session_state.setdefault("cam_seen", set())  # cleared stay cleared
    n_cls = st.columns([1, 3])[0].number_input("Number of classes", 2, 6, 2, key="cam_n")
    cols = st.columns(int(n_cls))
    names = []
    for k, col in enumerate(cols):
        with col:
            names.append(st.text_input(f"Class {k + 1}", f"class {k + 1}", key=f"cam_name_{k}"))
            shots = photos.setdefault(k, {})
            shot = st.camera_input("Take a photo", key=f"cam_{k}", label_visibility="collapsed")
            files = st.file_uploader("or add images", type=["jpg", "jpeg", "png", "webp", "bmp"],
                                     accept_multiple_files=True, key=f"cam_files_{k}")
            for blob in ([shot.getvalue()] if shot is not None else []) + [f.getvalue() for f in files or []]:
                digest = hashlib.sha1(blob).hexdigest()
                if digest not in seen:
                    seen.add(digest)
                    shots[digest] = blob
            st.caption(f"{len(shots)} photo(s)")
            if shots:
                st.image(list(shots.values())[-12:], width=56)
                if st.button("Clear", key=f"cam_clear_{k}"):
                    shots.clear()
                    st.rerun()
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    ds_name = c1.text_input("Dataset name", "my-webcam-dataset", key="cam_ds_name")
    if c2.button("Save dataset", type="primary", key="cam_save") and workspace.writable("save datasets"):
        from tlviz.data import load_dataset, save_user_dataset
        from tlviz.safeio import BadImage, sanitize_name
        from tlviz.workspaces import QuotaExceeded

        images = {names[k] or f"class {k + 1}": list(photos.get(k, {}).values()) for k in range(int(n_cls))}
        filled = {c: v for c, v in images.items() if v}
        if len({sanitize_name(c) for c in filled}) < 2:
            st.error("Take photos for at least two classes with different names first.")
        else:
            try:
                folder = save_user_dataset(ds_name or "webcam", filled)
                for k in range(int(n_cls)):
                    photos.get(k, {}).clear()
                widgets.use_dataset(folder.name, opened=load_dataset(folder))
            except BadImage as e:
                st.error(f"A photo could not be read: {esc(e)}")
            except QuotaExceeded as e:
                st.error(esc(e))
            except Exception as e:  # noqa: BLE001 - disk full: the page survives it
                st.error(f"Could not save the dataset ({type(e).__name__}): {esc(e)}")

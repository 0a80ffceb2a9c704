"""Image previews on hover for the 2D maps (a Streamlit v2 component, no network).

Plotly cannot draw an image in its hover box, so the map keeps ``st.plotly_chart`` (its
click and lasso selections, legend and toolbar unchanged) and this small component,
mounted right after the chart in the same keyed container, listens to the chart's
``plotly_hover`` events in the browser (plotly.js's public event API on the graph div)
and draws its own card by the cursor: the 96 px thumbnail, class, split and file name.

Thumbnails travel as JPEG sprite sheets (:mod:`tlviz.sprites`, dataset order): each
sheet is served by Streamlit's media file manager, like an ``st.image`` picture — an
unguessable content-hash URL that exists only while a session shows it, never a static
folder. The browser fetches up to :data:`PREFETCH_BYTES` of sheets as soon as the map
is shown and any other sheet on the first hover over one of its images (~0.1 MB each),
then keeps them in memory. Every text is set with ``textContent``: never parsed as HTML.
"""

from __future__ import annotations

import os

import streamlit as st

# sheets fetched up front: every one up to ~8,000-10,000 photos (TLVIZ_HOVER_PREFETCH_BYTES)
PREFETCH_BYTES = int(os.environ.get("TLVIZ_HOVER_PREFETCH_BYTES", 16_000_000))

_JS = r"""
export default function (component) {
  const data = component.data || {};
  const G = window.__tlvizHover || (window.__tlvizHover = {images: new Map(), maps: {}, hooks: {}});
  G.maps[data.target] = data;
  // forget maps no longer on the page, and their sheets (another dataset, another page)
  for (const key of Object.keys(G.maps)) {
    if (key !== data.target && !document.querySelector(".st-key-" + key)) delete G.maps[key];
  }
  const live = new Set(Object.values(G.maps).flatMap((m) => m.sheets));
  for (const [url, im] of [...G.images]) {
    if (live.has(url)) continue;
    if (im.src.startsWith("blob:")) URL.revokeObjectURL(im.src);
    G.images.delete(url);
  }

  // one <img> per sheet, kept for the session. Its bytes come through fetch() and a blob:
  // URL: chromium delays off-screen <img src=...> loads (45-230 ms for an 80 KB sheet on
  // localhost) while fetch() takes ~6 ms. im._ready settles once it is loaded and decoded.
  function sheet(url, urgent) {
    let im = G.images.get(url);
    if (!im) {
      im = new Image();
      im.dataset.sheet = url;
      im._ready = fetch(url, {priority: urgent ? "high" : "auto", credentials: "same-origin"})
        .then((r) => { if (!r.ok) throw new Error(String(r.status)); return r.blob(); })
        .then((b) => { im.src = URL.createObjectURL(b); return im.decode(); })
        .catch(() => {});
      G.images.set(url, im);
    }
    return im;
  }

  function tip() {
    let t = document.getElementById("tlviz-hover-card");
    if (t) return t;
    t = document.createElement("div");
    t.id = "tlviz-hover-card";
    t.setAttribute("role", "tooltip");
    t.style.cssText = "position:fixed;z-index:100000;pointer-events:none;display:none;" +
      "background:#fff;color:#111;border:1px solid #d0d3da;border-radius:8px;padding:8px;" +
      "box-shadow:0 4px 16px rgba(0,0,0,.18);font:14px/1.35 'Source Sans Pro',sans-serif;" +
      "max-width:260px;";
    const box = document.createElement("div");
    box.className = "tlviz-thumb";
    box.style.cssText = "position:relative;overflow:hidden;background:#eee;border-radius:4px;";
    const cls = document.createElement("div");
    cls.style.cssText = "font-weight:600;margin-top:6px;";
    const meta = document.createElement("div");
    meta.style.cssText = "color:#555;font-size:13px;overflow-wrap:anywhere;";
    t.append(box, cls, meta);
    document.body.appendChild(t);
    return t;
  }

  function place(t, ev) {
    const w = t.offsetWidth, h = t.offsetHeight, pad = 18;
    let x = ev.clientX + pad, y = ev.clientY + pad;
    if (x + w > window.innerWidth - 4) x = ev.clientX - w - pad;
    if (y + h > window.innerHeight - 4) y = Math.max(4, ev.clientY - h - pad);
    t.style.left = Math.max(4, x) + "px";
    t.style.top = y + "px";
  }

  function show(target, ev) {
    const m = G.maps[target];
    const p = ev && ev.points && ev.points[0];
    const cd = p && p.customdata;
    if (!m || !cd || cd.length < 4) return;
    const idx = Number(cd[0]);
    const hoverT = performance.now();
    const t = tip(), box = t.firstChild;
    const s = Math.floor(idx / m.per_sheet), k = idx % m.per_sheet;
    box.style.width = box.style.height = m.show + "px";
    t.children[1].textContent = m.classes[Number(cd[1])] ?? "";
    let line = (cd[3] ? cd[3] + " · " : "") + (cd[2] || "") + " · #" + idx;
    if (cd.length > 4 && cd[4] !== null && m.kept_k) line += " · neighbours kept " + cd[4] + "/" + m.kept_k;
    t.children[2].textContent = line;
    t.dataset.index = String(idx);
    t.dataset.ready = "0";
    const url = m.sheets[s];
    const im = url ? sheet(url, true) : null;
    const cached = !!(im && im.complete && im.naturalWidth);
    const token = (G.token = (G.token || 0) + 1);
    box.replaceChildren();
    // the sheet's own (already decoded) <img> goes into the card, shifted to the tile: no
    // new request and no new decode, unlike a fresh <img src=...> (2-60 ms in chromium)
    const put = () => {
      if (G.token !== token || !im.naturalWidth) return;
      const scale = m.show / m.tile;
      im.alt = "";
      im.style.cssText = "position:absolute;max-width:none;width:" + (im.naturalWidth * scale) +
        "px;left:" + (-(k % m.cols) * m.show) + "px;top:" + (-Math.floor(k / m.cols) * m.show) + "px;";
      box.replaceChildren(im);
      requestAnimationFrame(() => {
        if (G.token !== token) return;
        t.dataset.ready = "1";
        G.lastShown = {index: idx, t: performance.now(), hover: hoverT, cached: cached};
        window.dispatchEvent(new CustomEvent("tlviz-hover-shown", {detail: G.lastShown}));
      });
    };
    if (cached) put();
    else if (im) im._ready.then(put);
    t.style.display = "block";
    place(t, ev.event || {clientX: 0, clientY: 0});
  }

  function hide() {
    const t = document.getElementById("tlviz-hover-card");
    G.token = (G.token || 0) + 1;
    if (t) t.style.display = "none";
  }

  function hook() {
    const gd = document.querySelector(".st-key-" + data.target + " .js-plotly-plot");
    if (!gd || typeof gd.on !== "function" || !gd._ev) return;
    if (gd.__tlvizEv === gd._ev) return;  // already listening to this plot
    gd.__tlvizEv = gd._ev;
    gd.on("plotly_hover", (ev) => show(data.target, ev));
    gd.on("plotly_unhover", hide);
    gd.on("plotly_relayouting", hide);
    gd.addEventListener("mouseleave", hide);
  }

  hook();
  const timer = setInterval(hook, 400);  // the chart is (re)drawn after this component
  // prefetch: four sheets at a time until the byte budget is spent; the other sheets
  // load on their first hover
  let budget = data.prefetch || 0, i = 0;
  const next = () => {
    if (i >= data.sheets.length || budget <= 0) return;
    const im = sheet(data.sheets[i++], false);
    budget -= data.sheet_bytes || 1;
    im._ready.then(next);
  };
  for (let c = 0; c < 4; c++) next();
  return () => { clearInterval(timer); hide(); };
}
"""

# the component draws nothing in place: take back the gap the page puts before it
_CSS = "<style>.stElementContainer[class*='_tlvizhover'] { margin-top: -1rem; }</style>"
_component = st.components.v2.component("tlviz.hovermap", js=_JS, isolate_styles=False)


def sprites(ref: str, seed: int = 0):
    """The dataset's thumbnail sheets (a progress bar the first time), or None after a
    one-line note: the map still works, without previews."""
    from ui import cache, widgets
    from ui.text import esc

    try:
        with widgets.progress("Thumbnails for the map") as cb:
            return cache.sprite_sheets(ref, seed, progress=cb)
    except Exception as e:  # noqa: BLE001 - never a traceback for a missing preview
        st.caption(f"No image previews ({type(e).__name__}): {esc(e)}")
        return None


def _media_urls(sheets: list[bytes], target: str) -> list[str]:
    """One media-file URL per sheet, held by this session for this run (as ``st.image``)."""
    from streamlit import config, runtime

    mgr = runtime.get_instance().media_file_mgr
    base = (config.get_option("server.baseUrlPath") or "").strip("/")
    prefix = f"/{base}" if base else ""
    return [prefix + mgr.add(data, "image/jpeg", f"tlviz.sprites.{target}.{s}")
            for s, data in enumerate(sheets)]


def attach(target: str, sprites, classes: list[str], kept_k: int | None = None,
           show: int = 120) -> None:
    """Hover previews for the plotly chart drawn inside ``st.container(key=target)``
    (the figure made with ``embedding_figure(..., image_hover=True)``); call it inside the
    same container, after the chart. ``show``: the preview's size in CSS pixels."""
    try:  # Streamlit's media file manager is internal API: a change must not break the map
        urls = _media_urls(sprites.sheets, target)
    except Exception as e:  # noqa: BLE001 - internal API: the map works without previews
        st.caption(f"No image previews ({type(e).__name__}).")
        return
    per_sheet = max(1, sprites.nbytes // max(1, len(sprites.sheets)))
    st.html(_CSS)
    _component(key=f"{target}_tlvizhover", height="content", data={
        "target": target, "sheets": urls, **sprites.layout(), "show": int(show),
        "classes": [str(c) for c in classes], "kept_k": kept_k,
        "prefetch": PREFETCH_BYTES, "sheet_bytes": per_sheet})

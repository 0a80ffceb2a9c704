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

import streamlit as st

PREFETCH_BYTES = 8_000_000  # sheets fetched up front (all of them up to ~4,000 photos)

_JS = r"""
export default function (component) {
  const data = component.data || {};
  const G = window.__tlvizHover || (window.__tlvizHover = {images: new Map(), maps: {}, hooks: {}});
  G.maps[data.target] = data;

  function sheet(url, urgent) {
    let im = G.images.get(url);
    if (!im) {
      im = new Image();
      im.decoding = "async";
      if (urgent) im.fetchPriority = "high";
      im.src = url;
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
    const img = document.createElement("img");
    img.alt = "";
    img.style.cssText = "position:absolute;left:0;top:0;max-width:none;";
    box.appendChild(img);
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
    const t = tip(), box = t.firstChild, img = box.firstChild;
    const s = Math.floor(idx / m.per_sheet), k = idx % m.per_sheet;
    const scale = m.show / m.tile;
    box.style.width = box.style.height = m.show + "px";
    img.style.width = (m.cols * m.tile * scale) + "px";
    img.style.left = (-(k % m.cols) * m.show) + "px";
    img.style.top = (-Math.floor(k / m.cols) * m.show) + "px";
    t.children[1].textContent = m.classes[Number(cd[1])] ?? "";
    let line = (cd[3] ? cd[3] + " · " : "") + (cd[2] || "") + " · #" + idx;
    if (cd.length > 4 && cd[4] !== null && m.kept_k) line += " · neighbours kept " + cd[4] + "/" + m.kept_k;
    t.children[2].textContent = line;
    t.dataset.index = String(idx);
    t.dataset.ready = "0";
    const url = m.sheets[s];
    const im = url ? sheet(url, true) : null;
    const token = (G.token = (G.token || 0) + 1);
    const ready = () => {
      if (G.token !== token) return;
      if (img.getAttribute("src") !== url) img.src = url;
      const mark = () => {
        if (G.token !== token) return;
        t.dataset.ready = "1";
        G.lastShown = {index: idx, t: performance.now()};
        window.dispatchEvent(new CustomEvent("tlviz-hover-shown", {detail: G.lastShown}));
      };
      (img.decode ? img.decode() : Promise.resolve()).then(mark, mark);
    };
    if (im && im.complete && im.naturalWidth) ready();
    else if (im) { img.removeAttribute("src"); im.addEventListener("load", ready, {once: true}); }
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
  let budget = data.prefetch || 0, i = 0;
  const next = () => {
    if (i >= data.sheets.length || budget <= 0) return;
    const im = sheet(data.sheets[i++], false);
    budget -= data.sheet_bytes || 1;
    if (im.complete) next();
    else {
      im.addEventListener("load", next, {once: true});
      im.addEventListener("error", next, {once: true});
    }
  };
  next();
  return () => { clearInterval(timer); hide(); };
}
"""

_component = st.components.v2.component("tlviz.hovermap", js=_JS, isolate_styles=False)


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
    urls = _media_urls(sprites.sheets, target)
    per_sheet = max(1, sprites.nbytes // max(1, len(sprites.sheets)))
    _component(key=f"{target}.hover", height="content", data={
        "target": target, "sheets": urls, **sprites.layout(), "show": int(show),
        "classes": [str(c) for c in classes], "kept_k": kept_k,
        "prefetch": PREFETCH_BYTES, "sheet_bytes": per_sheet})

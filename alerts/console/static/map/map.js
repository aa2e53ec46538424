// Reunite console maps: Leaflet (vendored) over the shipped offline basemap or the deployment's
// tiles. Containers carry their data in data-* attributes (the CSP forbids inline script):
//   data-map     {"rings": [...], "points": [...], "pick": {...}, "start": [lat, lon]}
//   data-config  {"tiles", "tilesAttribution", "basemap", "attribution", "lang"}
//   data-src     a same-origin JSON URL with the same shape as data-map (fetched on load)
//   data-refresh seconds between fetches of data-src
// Once drawn a container gets data-ready="1", data-rings and data-points (the tests use them).
"use strict";

(function () {
  if (window.ReuniteMaps) return; // the script may be included once per map on a page
  window.ReuniteMaps = { maps: {} };

  const STATIC = "/console/static/";
  const CHINA = [[18, 73], [54, 135]];
  const PALETTE = ["#b91c1c", "#c2410c", "#a16207", "#4d7c0f", "#0e7490", "#6d28d9"];
  const POINT_STYLE = {
    last_seen: { color: "#ffffff", fillColor: "#111827", radius: 7 },
    original: { color: "#111827", fillColor: "#ffffff", radius: 6 },
    sighting: { color: "#ffffff", fillColor: "#c2410c", radius: 6 },
    case: { color: "#ffffff", fillColor: "#b91c1c", radius: 7 },
    tip: { color: "#ffffff", fillColor: "#7c3aed", radius: 6 },
  };
  const BASE_ORDER = ["land", "lake", "province", "country", "coast"];
  const BASE_STYLE = {
    land: { stroke: false, fill: true, fillColor: "#f3f1ea", fillOpacity: 1 },
    lake: { stroke: false, fill: true, fillColor: "#cfe0ec", fillOpacity: 1 },
    province: { color: "#a8a29e", weight: 0.8, dashArray: "3 3", fill: false },
    country: { color: "#57534e", weight: 1.4, fill: false },
    coast: { color: "#6b8fa8", weight: 1, fill: false },
  };

  function parse(el, name) {
    try {
      return JSON.parse(el.getAttribute(name) || "null");
    } catch (e) {
      return null;
    }
  }

  function escapeHtml(text) {
    const div = document.createElement("div");
    div.textContent = text == null ? "" : String(text);
    return div.innerHTML;
  }

  function loadCss(href) {
    if (document.querySelector('link[href="' + href + '"]')) return;
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = href;
    document.head.appendChild(link);
  }

  function loadLeaflet() {
    loadCss(STATIC + "vendor/leaflet/leaflet.css");
    loadCss(STATIC + "map/map.css");
    if (window.L) return Promise.resolve(window.L);
    return new Promise(function (resolve, reject) {
      const script = document.createElement("script");
      script.src = STATIC + "vendor/leaflet/leaflet.js";
      script.onload = function () { resolve(window.L); };
      script.onerror = reject;
      document.head.appendChild(script);
    });
  }

  let basemapDoc = null;
  function basemap(url) {
    if (!basemapDoc) {
      basemapDoc = fetch(url, { credentials: "same-origin" })
        .then(function (res) { return res.ok ? res.json() : null; })
        .catch(function () { return null; });
    }
    return basemapDoc;
  }

  // How many cities (by population rank) to label at a zoom level.
  function citiesAt(zoom) {
    if (zoom <= 3) return 8;
    if (zoom === 4) return 25;
    if (zoom === 5) return 60;
    if (zoom === 6) return 150;
    if (zoom === 7) return 300;
    return 100000;
  }

  function drawBasemap(L, map, doc, lang, el) {
    if (!doc) return;
    const renderer = L.canvas({ padding: 0.3 });
    const features = doc.features.filter(function (f) { return f.properties.layer !== "city"; });
    features.sort(function (a, b) {
      return BASE_ORDER.indexOf(a.properties.layer) - BASE_ORDER.indexOf(b.properties.layer);
    });
    L.geoJSON({ type: "FeatureCollection", features: features }, {
      renderer: renderer,
      interactive: false,
      style: function (f) { return BASE_STYLE[f.properties.layer] || {}; },
    }).addTo(map);
    const cities = doc.features.filter(function (f) { return f.properties.layer === "city"; });
    const labels = L.layerGroup().addTo(map);
    function relabel() {
      labels.clearLayers();
      const max = citiesAt(map.getZoom());
      const view = map.getBounds().pad(0.1);
      const placed = []; // label boxes in pixels: a city whose label would overlap is skipped
      cities.forEach(function (f) {
        if (f.properties.rank > max) return;
        const c = f.geometry.coordinates;
        const at = L.latLng(c[1], c[0]);
        if (!view.contains(at)) return;
        const name = (lang === "zh" ? f.properties.zh : f.properties.en) || f.properties.en;
        const px = map.latLngToContainerPoint(at);
        const box = [px.x - 4, px.y - 9, px.x + 10 + name.length * (lang === "zh" ? 12 : 7), px.y + 9];
        const clash = placed.some(function (b) {
          return box[0] < b[2] && b[0] < box[2] && box[1] < b[3] && b[1] < box[3];
        });
        if (clash) return;
        placed.push(box);
        const icon = L.divIcon({
          className: "city-label" + (f.properties.rank <= 40 ? " major" : ""),
          html: '<span class="city-dot"></span><span class="city-name">' + escapeHtml(name) +
            "</span>",
          iconSize: null,
          iconAnchor: [3, 3],
        });
        labels.addLayer(L.marker(at, { icon: icon, interactive: false, keyboard: false }));
      });
    }
    map.on("zoomend moveend", relabel);
    relabel();
    el.setAttribute("data-basemap-ready", "1");
  }

  function addBase(L, map, cfg, el) {
    map.attributionControl.setPrefix("Leaflet");
    if (cfg.tiles) {
      L.tileLayer(cfg.tiles, { maxZoom: 18, attribution: escapeHtml(cfg.tilesAttribution || "") })
        .addTo(map);
      return;
    }
    el.classList.add("offline-basemap");
    map.setMaxZoom(12);
    if (cfg.bounds) {
      // Never show past the basemap's edge: no zooming out beyond it, no panning off it.
      const outer = L.latLngBounds(cfg.bounds);
      map.setMaxBounds(outer);
      map.options.maxBoundsViscosity = 1;
      const floor = function () { map.setMinZoom(Math.max(2, map.getBoundsZoom(outer, true))); };
      floor();
      map.on("resize", floor);
    }
    map.attributionControl.addAttribution(escapeHtml(cfg.attribution || ""));
    if (cfg.basemap) {
      basemap(cfg.basemap).then(function (doc) { drawBasemap(L, map, doc, cfg.lang, el); });
    }
  }

  function drawOverlay(L, map, group, data, el) {
    group.clearLayers();
    const bounds = L.latLngBounds([]);
    const rings = (data && data.rings) || [];
    // Largest first, so smaller rings stay clickable on top.
    rings.slice().reverse().forEach(function (ring, i) {
      const colour = ring.superseded ? "#6b7280" : PALETTE[(rings.length - 1 - i) % PALETTE.length];
      const layer = L.polygon(ring.polygon, {
        color: colour,
        weight: ring.current ? 4 : 1.5,
        fillOpacity: ring.current ? 0.14 : 0.04,
        dashArray: ring.current || ring.status === "started" ? null : "6 5",
        className: "ring" + (ring.current ? " ring-current" : ""),
      });
      layer.bindTooltip(escapeHtml(ring.label), { sticky: true });
      group.addLayer(layer);
      bounds.extend(layer.getBounds());
    });
    ((data && data.points) || []).forEach(function (p) {
      const style = POINT_STYLE[p.kind] || POINT_STYLE.last_seen;
      const marker = L.circleMarker([p.lat, p.lon], {
        radius: style.radius,
        color: style.color,
        weight: 2,
        fillColor: style.fillColor,
        fillOpacity: 1,
        className: "point point-" + p.kind,
      });
      marker.bindTooltip(escapeHtml(p.label));
      if (p.href) {
        marker.on("click", function () { window.location.assign(p.href); });
      }
      group.addLayer(marker);
      bounds.extend([p.lat, p.lon]);
    });
    el.setAttribute("data-rings", String(rings.length));
    el.setAttribute("data-points", String(((data && data.points) || []).length));
    return bounds;
  }

  function fit(map, bounds, data) {
    if (bounds.isValid() && data && data.rings && data.rings.length) {
      map.fitBounds(bounds, { padding: [16, 16] });
    } else if (bounds.isValid()) {
      map.fitBounds(bounds.pad(0.5), { maxZoom: 7 });
    } else if (data && data.start) {
      map.setView(data.start, 10);
    } else {
      map.fitBounds(CHINA);
    }
  }

  function picker(L, map, el, data) {
    const pick = data.pick;
    const lat = document.getElementById(pick.lat);
    const lon = document.getElementById(pick.lon);
    const address = pick.address ? document.getElementById(pick.address) : null;
    let marker = null;

    function place(latlng) {
      if (!marker) {
        marker = L.marker(latlng, { draggable: true, autoPan: true, title: el.getAttribute("aria-label") });
        marker.on("dragend", function () { fill(marker.getLatLng()); });
        marker.addTo(map);
      } else {
        marker.setLatLng(latlng);
      }
    }

    function fill(latlng) {
      const wrapped = latlng.wrap();
      lat.value = wrapped.lat.toFixed(5);
      lon.value = wrapped.lng.toFixed(5);
      [lat, lon].forEach(function (input) {
        input.removeAttribute("aria-invalid");
        input.dispatchEvent(new Event("change", { bubbles: true }));
      });
      el.setAttribute("data-picked", lat.value + "," + lon.value);
    }

    function fromInputs() {
      const a = parseFloat(lat.value);
      const b = parseFloat(lon.value);
      if (isNaN(a) || isNaN(b) || a < -90 || a > 90 || b < -180 || b > 180) return;
      place([a, b]);
      if (!map.getBounds().contains([a, b])) map.setView([a, b], Math.max(map.getZoom(), 8));
    }

    map.on("click", function (e) {
      place(e.latlng);
      fill(e.latlng);
    });
    [lat, lon].forEach(function (input) { input.addEventListener("input", fromInputs); });
    if (data.start) place(data.start);

    window.ReuniteMaps.pick = function (result) {
      const latlng = L.latLng(result.lat, result.lon);
      place(latlng);
      fill(latlng);
      map.setView(latlng, 10);
      if (address && (!address.value || address.value === address.getAttribute("data-auto"))) {
        address.value = result.label;
        address.setAttribute("data-auto", result.label);
      }
    };
  }

  function lookup() {
    const box = document.getElementById("address-lookup");
    if (!box || box.getAttribute("data-bound")) return; // start() runs again after a swap
    box.setAttribute("data-bound", "1");
    const input = document.getElementById("address-search");
    const go = document.getElementById("address-search-go");
    const list = document.getElementById("address-results");
    const status = document.getElementById("address-status");
    const picked = document.getElementById("address-picked");
    const texts = parse(box, "data-texts") || {};

    function say(text) { status.textContent = text; }

    function show(results) {
      list.innerHTML = "";
      results.forEach(function (r) {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "result";
        button.setAttribute("data-lat", r.lat);
        button.setAttribute("data-lon", r.lon);
        const where = [r.name, r.province].filter(Boolean).join(" · ");
        const name = document.createElement("strong");
        name.textContent = where || r.label;
        const coords = document.createElement("span");
        coords.className = "coords";
        coords.textContent = Number(r.lat).toFixed(5) + ", " + Number(r.lon).toFixed(5);
        button.appendChild(name);
        button.appendChild(coords);
        button.title = r.label;
        button.addEventListener("click", function () {
          list.querySelectorAll(".result").forEach(function (b) {
            b.classList.remove("chosen");
            b.removeAttribute("aria-current");
          });
          button.classList.add("chosen");
          button.setAttribute("aria-current", "true");
          if (window.ReuniteMaps.pick) window.ReuniteMaps.pick(r);
          picked.textContent = (texts.picked || "{label} · {lat}, {lon}")
            .replace("{label}", r.label)
            .replace("{lat}", Number(r.lat).toFixed(5))
            .replace("{lon}", Number(r.lon).toFixed(5));
          picked.hidden = false;
        });
        item.appendChild(button);
        list.appendChild(item);
      });
      list.hidden = !results.length;
    }

    async function search() {
      const q = input.value.trim();
      if (!q) {
        say(texts.empty || "");
        input.focus();
        return;
      }
      say(texts.searching || "…");
      try {
        const res = await fetch(box.getAttribute("data-geocode-url"), {
          method: "POST",
          credentials: "same-origin",
          redirect: "manual",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": box.getAttribute("data-csrf") },
          body: JSON.stringify({ q: q }),
        });
        const type = res.headers.get("content-type") || "";
        const body = type.indexOf("json") >= 0 ? await res.json() : null;
        if (!res.ok) {
          let detail = body && body.detail;
          if (Array.isArray(detail)) detail = detail.map(function (d) { return d.message; }).join("; ");
          show([]);
          say((texts.failed || "") + (detail || res.status));
          return;
        }
        show(body.results);
        say(body.results.length ? (texts.found || "").replace("{n}", body.results.length) : texts.none || "");
      } catch (e) {
        show([]);
        say((texts.failed || "") + (texts.network || ""));
      }
    }

    go.addEventListener("click", search);
    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter") {
        e.preventDefault(); // never submit the case form from the search box
        search();
      }
    });
  }

  function init(L, el) {
    if (el.getAttribute("data-ready")) return;
    const data = parse(el, "data-map") || {};
    const cfg = parse(el, "data-config") || {};
    const map = L.map(el, { worldCopyJump: true, minZoom: 2 });
    window.ReuniteMaps.maps[el.id] = map;
    addBase(L, map, cfg, el);
    const overlay = L.layerGroup().addTo(map);
    fit(map, drawOverlay(L, map, overlay, data, el), data);
    if (data.pick) picker(L, map, el, data);
    const src = el.getAttribute("data-src");
    if (src) {
      let first = true;
      const refresh = async function () {
        try {
          const res = await fetch(src, { credentials: "same-origin", headers: { "X-Console-Poll": "1" }, redirect: "manual" });
          if (!res.ok || res.type === "opaqueredirect") return false;
          const fresh = await res.json();
          const bounds = drawOverlay(L, map, overlay, fresh, el);
          if (first) fit(map, bounds, fresh);
          first = false;
          return true;
        } catch (e) {
          return true; // a network blip: try again next time
        }
      };
      refresh().then(function () { el.setAttribute("data-ready", "1"); });
      const every = Number(el.getAttribute("data-refresh") || 0);
      if (every > 0) {
        const timer = setInterval(function () {
          // The live status may have swapped the page: a map no longer shown stops polling.
          if (!el.isConnected) return clearInterval(timer);
          refresh().then(function (ok) { if (!ok) clearInterval(timer); });
        }, every * 1000);
      }
    } else {
      el.setAttribute("data-ready", "1");
    }
    // A map laid out while hidden (a closed <details>) needs its size again when shown.
    const details = el.closest("details");
    if (details) details.addEventListener("toggle", function () { map.invalidateSize(); });
  }

  function start() {
    const els = document.querySelectorAll(".map[data-map]");
    if (!els.length) return;
    loadLeaflet().then(function (L) {
      // Hidden in the markup: without JavaScript the page shows no empty map or dead search.
      ["address-lookup", "place-picker-hint"].forEach(function (id) {
        const part = document.getElementById(id);
        if (part) part.hidden = false;
      });
      els.forEach(function (el) {
        el.hidden = false;
        init(L, el);
      });
      lookup();
      window.addEventListener("load", function () {
        Object.keys(window.ReuniteMaps.maps).forEach(function (id) {
          window.ReuniteMaps.maps[id].invalidateSize();
        });
      });
    });
  }

  // console.js swaps the page's content when a case changes state: draw the new page's maps.
  document.addEventListener("reunite:swapped", start);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

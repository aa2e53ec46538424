// Reunite console: live refresh by polling, client-side form checks, language auto-submit.
// Plain JavaScript from this origin only (the CSP forbids inline script).
"use strict";

document.documentElement.classList.add("js");

function poll(el) {
  const url = el.getAttribute("data-poll");
  let stopped = false;
  async function tick() {
    if (stopped) return;
    try {
      const res = await fetch(url, {
        credentials: "same-origin",
        headers: { "X-Console-Poll": "1" },
        redirect: "manual",
      });
      if (res.ok && res.type !== "opaqueredirect") {
        el.innerHTML = await res.text();
      } else {
        stopped = true; // signed out or gone: stop instead of hammering the server
      }
    } catch (e) {
      /* network blip: try again next tick */
    }
  }
  setInterval(tick, 5000);
}

// Live case status: every case page has one element with data-status (the JSON URL),
// data-state and data-layout. Each tick writes the JSON's texts into [data-live] elements
// and its [done, targeted] pairs into progress[data-live-progress]. A new layout (rows,
// waves or messages came or went) swaps the page's [data-live-region]s for fresh ones; a
// new state (the case was approved, resolved...) swaps the whole page, without a reload.
const POLL_HEADERS = { "X-Console-Poll": "1" };

async function fetchPage(url) {
  const res = await fetch(url, {
    credentials: "same-origin",
    headers: POLL_HEADERS,
    redirect: "manual",
    cache: "no-store",
  });
  if (!res.ok || res.type === "opaqueredirect") return null;
  return new DOMParser().parseFromString(await res.text(), "text/html");
}

async function swapPage(root, whole) {
  // data-page: the page's own GET address (the URL bar may show a form's POST address).
  const doc = await fetchPage(root.getAttribute("data-page") || window.location.pathname);
  if (!doc) return;
  const fresh = doc.getElementById(root.id);
  if (!fresh) return;
  if (whole) {
    const main = document.getElementById("main");
    main.innerHTML = doc.getElementById("main").innerHTML;
    document.title = doc.title;
    bind(main);
    document.dispatchEvent(new CustomEvent("reunite:swapped"));
    return;
  }
  root.querySelectorAll("[data-live-region]").forEach(function (region) {
    const next = doc.getElementById(region.id);
    if (next) region.replaceWith(document.importNode(next, true));
  });
  document.dispatchEvent(new CustomEvent("reunite:swapped"));
  ["data-state", "data-layout"].forEach(function (name) {
    root.setAttribute(name, fresh.getAttribute(name));
  });
}

function applyStatus(status) {
  const text = status.text || {};
  document.querySelectorAll("[data-live]").forEach(function (el) {
    const value = text[el.getAttribute("data-live")];
    if (value !== undefined && el.textContent !== value) el.textContent = value;
  });
  const progress = status.progress || {};
  document.querySelectorAll("progress[data-live-progress]").forEach(function (el) {
    const p = progress[el.getAttribute("data-live-progress")];
    if (!p) return;
    el.max = p[1] || 1;
    el.value = p[0];
  });
}

function liveStatus() {
  let busy = false;
  let stopped = false;
  async function tick() {
    const root = document.querySelector("[data-status]");
    if (!root || busy || stopped || document.hidden) return;
    busy = true;
    try {
      const res = await fetch(root.getAttribute("data-status"), {
        credentials: "same-origin",
        headers: Object.assign({ Accept: "application/json" }, POLL_HEADERS),
        redirect: "manual",
        cache: "no-store",
      });
      if (!res.ok || res.type === "opaqueredirect") {
        stopped = true; // signed out, or the case is gone: stop asking
        return;
      }
      const status = await res.json();
      if (status.state !== root.getAttribute("data-state")) {
        await swapPage(root, true);
      } else if (
        root.getAttribute("data-layout") !== "*" &&
        status.layout !== root.getAttribute("data-layout")
      ) {
        await swapPage(root, false);
      }
      applyStatus(status);
      root.setAttribute("data-updated", String(Date.now()));
    } catch (e) {
      /* network blip: try again next tick */
    } finally {
      busy = false;
    }
  }
  const root = document.querySelector("[data-status]");
  const every = Number((root && root.getAttribute("data-interval")) || 5000);
  setInterval(tick, every);
}

function labelOf(form, input) {
  const id = input.id;
  const label = id ? form.querySelector('label[for="' + id + '"]') : null;
  if (label) return label.textContent.replace("*", "").trim();
  const legend = input.closest("fieldset") && input.closest("fieldset").querySelector("legend");
  return legend ? legend.textContent.replace("*", "").trim() : input.name;
}

function validate(form, event) {
  const problems = [];
  form.querySelectorAll("input, select, textarea").forEach(function (input) {
    input.removeAttribute("aria-invalid");
    if (input.type === "hidden" || input.type === "file") return;
    if (!input.checkValidity()) {
      input.setAttribute("aria-invalid", "true");
      problems.push([input, labelOf(form, input) + ": " + input.validationMessage]);
    }
  });
  const photo = form.querySelector('input[type="file"][data-max-bytes]');
  if (photo && photo.files && photo.files.length) {
    const file = photo.files[0];
    if (["image/jpeg", "image/png", "image/webp"].indexOf(file.type) < 0) {
      problems.push([photo, photo.getAttribute("data-type-error")]);
    } else if (file.size > Number(photo.getAttribute("data-max-bytes"))) {
      problems.push([photo, photo.getAttribute("data-size-error")]);
    }
  }
  const langs = form.querySelectorAll('input[name="languages"]');
  if (langs.length && !Array.prototype.some.call(langs, function (c) { return c.checked; })) {
    problems.push([langs[0], labelOf(form, langs[0])]);
  }
  const age = form.querySelector('input[name="age_years"]');
  const dob = form.querySelector('input[name="date_of_birth"]');
  if (age && dob && !age.value && !dob.value) {
    const hint = age.parentNode.querySelector(".hint");
    problems.push([age, labelOf(form, age) + ": " + (hint ? hint.textContent : "")]);
  }
  const box = form.querySelector(".client-errors");
  if (!problems.length) {
    if (box) box.hidden = true;
    return;
  }
  event.preventDefault();
  if (!box) return;
  box.innerHTML = "";
  const list = document.createElement("ul");
  problems.forEach(function (p) {
    const item = document.createElement("li");
    item.textContent = p[1];
    p[0].setAttribute("aria-invalid", "true");
    list.appendChild(item);
  });
  box.appendChild(list);
  box.hidden = false;
  box.focus();
}

// Handlers for a page's forms (again after the live status swapped the page's content).
function bind(root) {
  root.querySelectorAll("form[data-validate]").forEach(function (form) {
    form.addEventListener("submit", function (event) { validate(form, event); });
  });
  root.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
}

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-poll]").forEach(poll);
  bind(document);
  liveStatus();
  const summary = document.getElementById("error-summary");
  if (summary) summary.focus();
});

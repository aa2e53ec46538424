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

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-poll]").forEach(poll);
  document.querySelectorAll("form[data-validate]").forEach(function (form) {
    form.addEventListener("submit", function (event) { validate(form, event); });
  });
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
  const summary = document.getElementById("error-summary");
  if (summary) summary.focus();
});

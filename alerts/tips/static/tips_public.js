// Reunite public case page: the tip form. Gets a signed challenge, finds a nonce whose
// SHA-256 starts with the asked number of zero bits (hashcash), then posts the tip.
// Plain JavaScript from this origin (the page's CSP allows no inline or third-party script).
"use strict";

var K = [
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];
var W = new Int32Array(64);

// SHA-256 of an ASCII string; returns the first 32-bit word of the digest (all the proof
// needs: at most 28 leading zero bits are ever asked for).
function sha256FirstWord(text) {
  var n = text.length;
  var blocks = ((n + 9 + 63) >> 6);
  var words = new Int32Array(blocks * 16);
  for (var i = 0; i < n; i++) words[i >> 2] |= (text.charCodeAt(i) & 0xff) << (24 - (i % 4) * 8);
  words[n >> 2] |= 0x80 << (24 - (n % 4) * 8);
  words[blocks * 16 - 1] = n * 8;
  var h0 = 0x6a09e667, h1 = 0xbb67ae85, h2 = 0x3c6ef372, h3 = 0xa54ff53a;
  var h4 = 0x510e527f, h5 = 0x9b05688c, h6 = 0x1f83d9ab, h7 = 0x5be0cd19;
  for (var b = 0; b < blocks; b++) {
    for (var t = 0; t < 16; t++) W[t] = words[b * 16 + t];
    for (t = 16; t < 64; t++) {
      var x = W[t - 15], y = W[t - 2];
      var s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      var s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      W[t] = (W[t - 16] + s0 + W[t - 7] + s1) | 0;
    }
    var a = h0, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7, bb = h1;
    for (t = 0; t < 64; t++) {
      var S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      var ch = (e & f) ^ (~e & g);
      var t1 = (h + S1 + ch + K[t] + W[t]) | 0;
      var S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      var maj = (a & bb) ^ (a & c) ^ (bb & c);
      var t2 = (S0 + maj) | 0;
      h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = bb; bb = a; a = (t1 + t2) | 0;
    }
    h0 = (h0 + a) | 0; h1 = (h1 + bb) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + h) | 0;
  }
  return h0 >>> 0;
}

// Count nonces in slices, yielding between them so the page stays responsive.
function solve(challenge, bits, done) {
  var nonce = 0;
  var limit = bits === 0 ? 0 : Math.pow(2, 32 - bits);
  function slice() {
    for (var i = 0; i < 20000; i++, nonce++) {
      if (bits === 0 || sha256FirstWord(challenge + ":" + nonce) < limit) {
        done(nonce);
        return;
      }
    }
    setTimeout(slice, 0);
  }
  slice();
}

function show(box, text, isError) {
  box.textContent = text;
  box.className = isError ? "tip-status tip-error" : "tip-status";
  box.hidden = false;
}

function labelFor(form, field) {
  var input = form.querySelector('[name="' + field + '"]');
  var label = input && input.id ? form.querySelector('label[for="' + input.id + '"]') : null;
  return label ? label.textContent : field;
}

function explain(form, detail) {
  if (typeof detail === "string") return detail;
  if (!detail || !detail.length) return "";
  return detail.map(function (d) { return labelFor(form, d.field) + ": " + d.message; }).join("; ");
}

function setup(form) {
  var box = form.querySelector(".tip-status");
  var button = form.querySelector('button[type="submit"]');
  form.hidden = false;
  var locate = form.querySelector("#tip-locate");
  if (locate && navigator.geolocation) {
    locate.hidden = false;
    locate.addEventListener("click", function () {
      navigator.geolocation.getCurrentPosition(function (pos) {
        form.elements.lat.value = pos.coords.latitude.toFixed(6);
        form.elements.lon.value = pos.coords.longitude.toFixed(6);
        form.elements.accuracy_m.value = Math.max(1, Math.round(pos.coords.accuracy));
      });
    });
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    button.disabled = true;
    show(box, form.getAttribute("data-working"), false);
    var data = new FormData(form);
    var seen = form.elements.seen_at.value;
    if (seen) data.set("seen_at", new Date(seen).toISOString());
    fetch(form.getAttribute("data-challenge"), { credentials: "omit", cache: "no-store" })
      .then(function (res) { return res.json().then(function (body) { return [res, body]; }); })
      .then(function (got) {
        if (!got[0].ok) throw new Error(explain(form, got[1].detail));
        solve(got[1].challenge, got[1].bits, function (nonce) {
          data.set("challenge", got[1].challenge);
          data.set("nonce", String(nonce));
          fetch(form.getAttribute("data-action"), { method: "POST", body: data, credentials: "omit" })
            .then(function (res) { return res.json().then(function (body) { return [res, body]; }); })
            .then(function (sent) {
              button.disabled = false;
              if (sent[0].ok) {
                form.reset();
                show(box, form.getAttribute("data-sent") + " " + sent[1].id, false);
              } else if (sent[0].status === 429) {
                show(box, form.getAttribute("data-limited"), true);
              } else {
                show(box, form.getAttribute("data-failed") + " " + explain(form, sent[1].detail), true);
              }
            })
            .catch(function (err) {
              button.disabled = false;
              show(box, form.getAttribute("data-failed") + " " + err.message, true);
            });
        });
      })
      .catch(function (err) {
        button.disabled = false;
        show(box, form.getAttribute("data-failed") + " " + err.message, true);
      });
  });
}

if (typeof module !== "undefined") module.exports = { sha256FirstWord: sha256FirstWord, solve: solve };
if (typeof document !== "undefined") {
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("tip-form");
    if (form) setup(form);
  });
}

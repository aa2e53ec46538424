// Reunite console: the tips panel (pages/tips.py). Polls a small status token every 5 s and
// reloads the list only when it changed and no one is typing in it (a half-written dismissal
// reason is never wiped); otherwise it shows a notice and waits.
"use strict";

(function () {
  function busy(panel) {
    if (panel.contains(document.activeElement) && document.activeElement.tagName === "INPUT") {
      return true;
    }
    return Array.prototype.some.call(panel.querySelectorAll('input[name="reason"]'), function (i) {
      return i.value !== "";
    });
  }

  function start(panel) {
    var statusUrl = panel.getAttribute("data-tips-status");
    var listUrl = panel.getAttribute("data-tips-list");
    var notice = document.getElementById("tips-refresh-notice");
    var count = document.getElementById("tips-new-count");
    var stopped = false;
    function get(url) {
      return fetch(url, {
        credentials: "same-origin",
        headers: { "X-Console-Poll": "1" },
        redirect: "manual",
      }).then(function (res) {
        if (!res.ok || res.type === "opaqueredirect") {
          stopped = true; // signed out or gone: stop instead of hammering the server
          throw new Error("stopped");
        }
        return res;
      });
    }
    function tick() {
      if (stopped) return;
      var list = document.getElementById("tips-list");
      var current = list ? list.getAttribute("data-token") : "";
      get(statusUrl).then(function (res) { return res.json(); }).then(function (status) {
        if (status.token === current) return;
        if (busy(panel)) {
          notice.hidden = false;
          return;
        }
        return get(listUrl).then(function (res) { return res.text(); }).then(function (html) {
          document.getElementById("tips-body").innerHTML = html;
          var fresh = document.getElementById("tips-list");
          if (count && fresh) {
            count.textContent = count.textContent.replace(/\d+/, fresh.getAttribute("data-new"));
          }
          notice.hidden = true;
        });
      }).catch(function () { /* network blip: try again next tick */ });
    }
    setInterval(tick, 5000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var panel = document.getElementById("tips-panel");
    if (panel) start(panel);
  });
})();

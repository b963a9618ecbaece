// The dashboard's one script. The server writes every page; this keeps a page live: when the
// change feed (server-sent events) names something, it fetches the page's live parts again
// (the elements marked `data-live`) and puts the ones that changed in place. It never builds
// HTML from an event, so nothing a model or tool wrote reaches the page but as the server
// escaped it. Without it the pages work the same, with a reload.
(function () {
  "use strict";
  var body = document.body;
  var SAVED = "taskflow.flows.query";

  // Filters persist: the list remembers its query, and the "Flows" link goes back to it.
  try {
    if (body.dataset.page === "flows") {
      localStorage.setItem(SAVED, location.search);
    } else {
      var saved = localStorage.getItem(SAVED);
      var link = document.querySelector('header nav a[href="/"]');
      if (saved && link) link.setAttribute("href", "/" + saved);
    }
  } catch (ignored) {
    // Storage may be off; the filters then live in the address only.
  }

  var eventsUrl = body.dataset.events;
  var liveUrl = body.dataset.live;
  if (!eventsUrl || !liveUrl || !window.EventSource || !window.fetch) return;
  var status = document.getElementById("live");

  // A key that finds "the same" control again in a part fetched anew.
  function keyOf(element) {
    var form = element.closest("form");
    if (form) return "form|" + form.getAttribute("action") + "|" + element.name + "|" + element.value;
    return element.getAttribute("href") ? "link|" + element.getAttribute("href") : null;
  }

  function findKey(root, key) {
    var found = null;
    root.querySelectorAll("a[href], button, input, select, textarea").forEach(function (element) {
      if (!found && keyOf(element) === key) found = element;
    });
    return found;
  }

  function apply(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    template.content.querySelectorAll("[data-live][id]").forEach(function (fresh) {
      var old = document.getElementById(fresh.id);
      if (!old || old.innerHTML === fresh.innerHTML) return;
      var active = document.activeElement;
      var inside = active && active !== body && old.contains(active);
      // Never pull a field from under someone typing in it.
      if (inside && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) return;
      old.querySelectorAll("details[open][id]").forEach(function (details) {
        var again = fresh.querySelector("#" + CSS.escape(details.id));
        if (again) again.open = true;
      });
      var key = inside ? keyOf(active) : null;
      old.replaceWith(fresh);
      if (key) {
        var same = findKey(fresh, key);
        if (same) same.focus();
      }
    });
  }

  var busy = false;
  var again = false;
  function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    fetch(liveUrl, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(apply)
      .catch(function () {
        // The next event tries again.
      })
      .then(function () {
        busy = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  var source = new EventSource(eventsUrl);
  source.addEventListener("flow", refresh);
  source.addEventListener("step", refresh);
  source.addEventListener("open", function () {
    if (status) status.textContent = "";
    body.dataset.connected = "true";
  });
  source.addEventListener("error", function () {
    if (status) status.textContent = "Live updates paused; reconnecting…";
    body.dataset.connected = "false";
  });
})();

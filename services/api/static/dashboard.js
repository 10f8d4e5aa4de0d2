// The care-continuum dashboard's one script: live census updates. It follows the API's
// /census/stream (Server-Sent Events, same origin, the session cookie) and, when the census
// changes, fetches the census and freshness panels again and swaps them in: no reload, the
// open tables stay open and the focus stays where it was. Everything else works without it.
(function () {
  "use strict";
  var main = document.getElementById("main");
  var live = document.getElementById("live");
  if (!main || !live || !main.dataset.stream) {
    return;
  }
  if (!window.EventSource || !window.fetch) {
    live.textContent = "This browser cannot follow live updates: reload the page to see new counts.";
    return;
  }
  var query = main.dataset.query || "";
  var shown = Number(main.dataset.position || "0");
  var pending = null;
  var busy = false;

  function say(text) {
    live.textContent = text;
  }

  function swap(old, html) {
    var template = document.createElement("template");
    template.innerHTML = html.trim();
    var fresh = template.content.firstElementChild;
    if (!fresh || fresh.id !== old.id) {
      return;
    }
    old.querySelectorAll("details[open]").forEach(function (details) {
      var again = details.id && fresh.querySelector("#" + CSS.escape(details.id));
      if (again) {
        again.open = true;
      }
    });
    var focused = old.contains(document.activeElement) ? document.activeElement.id : "";
    old.replaceWith(fresh);
    if (focused) {
      var element = document.getElementById(focused);
      if (element) {
        element.focus();
      }
    }
  }

  function refresh(position) {
    if (busy) {
      pending = position;
      return;
    }
    busy = true;
    var names = ["census", "freshness"];
    var next = Promise.resolve(true);
    names.forEach(function (name) {
      next = next.then(function (going) {
        var old = document.getElementById("panel-" + name);
        if (!going || !old) {
          return going;
        }
        return fetch("/dashboard/panels/" + name + (query ? "?" + query : ""), {
          credentials: "same-origin",
          headers: { Accept: "text/html" },
        }).then(function (response) {
          if (response.status === 401) {
            say("Signed out: sign in again to see live counts.");
            stream.close();
            return false;
          }
          if (!response.ok) {
            return true;
          }
          return response.text().then(function (html) {
            swap(old, html);
            return true;
          });
        });
      });
    });
    next.then(function (going) {
      if (going) {
        shown = position;
        main.dataset.position = String(position);
        say("Live: the census changed; now at position " + position + " (" + new Date().toLocaleTimeString() + ").");
      }
    }).catch(function () {
      say("Live updates interrupted; trying again.");
    }).finally(function () {
      busy = false;
      if (pending !== null) {
        var again = pending;
        pending = null;
        refresh(again);
      }
    });
  }

  var stream = new EventSource(main.dataset.stream, { withCredentials: true });
  stream.addEventListener("census", function (event) {
    var position = Number(event.lastEventId || "0");
    if (position > shown) {
      refresh(position);
    } else {
      say("Live: following the census (position " + shown + ").");
    }
  });
  stream.addEventListener("open", function () {
    say("Live: following the census (position " + shown + ").");
  });
  stream.addEventListener("error", function () {
    if (stream.readyState === EventSource.CLOSED) {
      say("Live updates stopped: reload the page (sign in again if asked).");
    } else {
      say("Live updates interrupted; reconnecting…");
    }
  });
})();

// The live tail: follow /live/events (server-sent events) and add each event
// to the list as text. Nothing from an event is ever parsed as HTML, and only
// links the server built (paths of this app) become hrefs.
(function () {
  "use strict";
  var list = document.getElementById("live-events");
  var status = document.getElementById("live-status");
  if (!list || !status || !window.EventSource) {
    return;
  }
  var MAX_ROWS = 1000;

  function span(className, text) {
    var element = document.createElement("span");
    element.className = className;
    element.textContent = text;
    return element;
  }

  function add(item) {
    var row = document.createElement("li");
    if (item.error === true) {
      row.className = "error";
    }
    var link = document.createElement("a");
    var href = String(item.href);
    if (href.charAt(0) === "/" && href.charAt(1) !== "/") {
      link.setAttribute("href", href);
    }
    link.textContent = "#" + String(item.seq);
    row.appendChild(link);
    row.appendChild(document.createTextNode(" "));
    row.appendChild(span("time", String(item.time)));
    row.appendChild(document.createTextNode(" "));
    var run = document.createElement("a");
    var runHref = String(item.run_href);
    if (runHref.charAt(0) === "/" && runHref.charAt(1) !== "/") {
      run.setAttribute("href", runHref);
    }
    run.className = "run";
    run.textContent = String(item.run_id);
    row.appendChild(run);
    row.appendChild(document.createTextNode(" "));
    row.appendChild(span("cat", String(item.category)));
    row.appendChild(document.createTextNode(" "));
    row.appendChild(span("type", String(item.event_type)));
    row.appendChild(document.createTextNode(" "));
    row.appendChild(span("preview", String(item.preview)));
    row.classList.add("new");
    list.appendChild(row);
    while (list.children.length > MAX_ROWS) {
      list.removeChild(list.firstElementChild);
    }
  }

  var source = new EventSource(list.getAttribute("data-stream"));
  status.textContent = "Connecting…";
  source.onopen = function () {
    status.textContent = "Following: new events appear below as they are written.";
  };
  source.onerror = function () {
    status.textContent = "Connection lost; reconnecting…";
  };
  source.addEventListener("event", function (message) {
    add(JSON.parse(message.data));
  });
  source.addEventListener("failure", function (message) {
    status.textContent = String(JSON.parse(message.data).message) + "; reconnecting…";
  });
})();

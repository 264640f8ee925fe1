// The console's only script: the dashboard's live panel. Each server-sent event is the panel
// rendered again by the server; without JavaScript the page shows its snapshot.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource) { return; }
  var state = document.getElementById("live-state");
  var source = new EventSource("/console/dashboard/events");
  source.onmessage = function (e) {
    live.innerHTML = e.data;
    if (state) { state.textContent = state.getAttribute("data-live"); }
  };
}());

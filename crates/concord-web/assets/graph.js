// Relationship graph of the object page. The drawing is laid out and rendered on the server
// (crates/concord-web/src/graph.rs: layered, labels in rows that cannot overlap, large fan-outs
// as group nodes that link to the graph with the group expanded) at one pixel per user unit,
// in a box that scrolls, so that labels keep their size (at least 11 px). This script adds pan
// (drag the background, arrow keys) and zoom in (Ctrl + wheel, + and -; 0 goes back) as one
// transform on #graph-view, never below the drawn size, so that zooming never makes a label
// smaller than drawn; the wheel alone scrolls the box. It also trims a label that the browser's
// font draws wider than the server's estimate, so that no label reaches into the next column.
// No library.
(function () {
  "use strict";
  var svg = document.getElementById("graph");
  var view = document.getElementById("graph-view");
  if (!svg || !view) { return; }
  // The server's budget for a label (graph.rs: LABEL_UNITS × UNIT_W user units).
  var LABEL_MAX = 22 * 7;

  Array.prototype.forEach.call(view.querySelectorAll(".node text.label"), function (t) {
    if (t.getComputedTextLength() <= LABEL_MAX) { return; }
    var s = t.textContent.replace(/…$/, "");
    while (s.length > 1 && t.getComputedTextLength() > LABEL_MAX) {
      s = s.slice(0, -1);
      t.textContent = s + "…";
    }
    // The link's name must still contain the visible label (WCAG 2.5.3).
    var link = t.closest("a");
    if (link) {
      var name = link.getAttribute("aria-label") || "";
      link.setAttribute("aria-label", t.textContent + " " + name.replace(/^[^:]*… /, ""));
    }
  });

  var scale = 1, tx = 0, ty = 0;
  function apply() {
    view.setAttribute("transform", "translate(" + tx + " " + ty + ") scale(" + scale + ")");
  }
  function fit() { scale = 1; tx = 0; ty = 0; apply(); }
  // Screen pixels to user units of the viewBox.
  function toUser(clientX, clientY) {
    var m = svg.getScreenCTM();
    if (!m) { return { x: 0, y: 0 }; }
    var p = svg.createSVGPoint();
    p.x = clientX; p.y = clientY;
    return p.matrixTransform(m.inverse());
  }
  function unitsPerPixel() {
    var m = svg.getScreenCTM();
    return m && m.a ? 1 / m.a : 1;
  }
  // Zoom by `factor` keeping the user point (ux, uy) where it is.
  function zoom(factor, ux, uy) {
    var next = Math.max(1, Math.min(8, scale * factor));
    factor = next / scale;
    tx = ux - (ux - tx) * factor;
    ty = uy - (uy - ty) * factor;
    scale = next;
    apply();
  }
  function centre() {
    var b = svg.viewBox.baseVal;
    return { x: b.x + b.width / 2, y: b.y + b.height / 2 };
  }
  fit();

  var dragging = null;
  svg.addEventListener("pointerdown", function (ev) {
    if (ev.target.closest && ev.target.closest("a")) { return; }
    dragging = { x: ev.clientX, y: ev.clientY };
    svg.classList.add("dragging");
    svg.setPointerCapture(ev.pointerId);
  });
  svg.addEventListener("pointermove", function (ev) {
    if (!dragging) { return; }
    var k = unitsPerPixel();
    tx += (ev.clientX - dragging.x) * k;
    ty += (ev.clientY - dragging.y) * k;
    dragging = { x: ev.clientX, y: ev.clientY };
    apply();
  });
  function stop(ev) {
    if (!dragging) { return; }
    dragging = null;
    svg.classList.remove("dragging");
    if (svg.hasPointerCapture(ev.pointerId)) { svg.releasePointerCapture(ev.pointerId); }
  }
  svg.addEventListener("pointerup", stop);
  svg.addEventListener("pointercancel", stop);
  svg.addEventListener("wheel", function (ev) {
    // The wheel alone scrolls the box (a large drawing is wider than the view).
    if (!ev.ctrlKey) { return; }
    ev.preventDefault();
    var p = toUser(ev.clientX, ev.clientY);
    zoom(ev.deltaY < 0 ? 1.15 : 1 / 1.15, p.x, p.y);
  }, { passive: false });
  svg.addEventListener("keydown", function (ev) {
    if (ev.target !== svg) { return; }
    var c = centre(), step = 40 * unitsPerPixel(), handled = true;
    switch (ev.key) {
      case "+": case "=": zoom(1.2, c.x, c.y); break;
      case "-": case "_": zoom(1 / 1.2, c.x, c.y); break;
      case "ArrowLeft": tx += step; apply(); break;
      case "ArrowRight": tx -= step; apply(); break;
      case "ArrowUp": ty += step; apply(); break;
      case "ArrowDown": ty -= step; apply(); break;
      case "0": fit(); break;
      default: handled = false;
    }
    if (handled) { ev.preventDefault(); }
  });
  svg.setAttribute("data-ready", String(view.querySelectorAll("a.node").length));
})();

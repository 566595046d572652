// Relationship graph of the object page: a force-directed layout drawn in SVG, with pan
// (drag the background, arrow keys), zoom (wheel, + and -), and each node a link to its
// object page (reachable with Tab). No library: the data is in <script id="graph-data">.
(function () {
  "use strict";
  var svg = document.getElementById("graph");
  var source = document.getElementById("graph-data");
  if (!svg || !source) { return; }
  var data = JSON.parse(source.textContent);
  var NS = "http://www.w3.org/2000/svg";
  var nodes = data.nodes;
  var edges = data.edges;
  var start = svg.getAttribute("data-start");

  // Colours by STIX type, stable for a type.
  var palette = ["#1d4e89", "#2a9d8f", "#e76f51", "#6a4c93", "#8ab17d", "#c9184a",
                 "#457b9d", "#b5838d", "#f4a261", "#264653", "#9c6644", "#588157"];
  function colour(type) {
    var h = 0;
    for (var i = 0; i < type.length; i++) { h = (h * 31 + type.charCodeAt(i)) >>> 0; }
    return palette[h % palette.length];
  }

  // Layout: nodes start on a circle (the start node in the middle), then a few hundred
  // iterations of repulsion between all pairs, springs along edges and a pull to the centre.
  var n = nodes.length;
  var i, j;
  for (i = 0; i < n; i++) {
    var a = 2 * Math.PI * i / Math.max(1, n);
    var r = nodes[i].id === start ? 0 : 150 + 8 * Math.sqrt(n);
    nodes[i].x = r * Math.cos(a);
    nodes[i].y = r * Math.sin(a);
    nodes[i].vx = 0; nodes[i].vy = 0;
  }
  var ideal = 90;
  for (var step = 0; step < 300; step++) {
    var cool = 1 - step / 300;
    for (i = 0; i < n; i++) {
      for (j = i + 1; j < n; j++) {
        var dx = nodes[i].x - nodes[j].x, dy = nodes[i].y - nodes[j].y;
        var d2 = dx * dx + dy * dy + 0.01;
        var f = ideal * ideal / d2;
        nodes[i].vx += dx * f; nodes[i].vy += dy * f;
        nodes[j].vx -= dx * f; nodes[j].vy -= dy * f;
      }
    }
    for (var k = 0; k < edges.length; k++) {
      var s = nodes[edges[k].source], t = nodes[edges[k].target];
      var ex = t.x - s.x, ey = t.y - s.y;
      var d = Math.sqrt(ex * ex + ey * ey) + 0.01;
      var g = (d - ideal) / d * 0.1;
      s.vx += ex * g; s.vy += ey * g;
      t.vx -= ex * g; t.vy -= ey * g;
    }
    for (i = 0; i < n; i++) {
      var p = nodes[i];
      if (p.id === start) { p.x = 0; p.y = 0; p.vx = 0; p.vy = 0; continue; }
      p.vx -= p.x * 0.01; p.vy -= p.y * 0.01;
      var v = Math.sqrt(p.vx * p.vx + p.vy * p.vy);
      var max = 30 * cool + 1;
      if (v > max) { p.vx *= max / v; p.vy *= max / v; }
      p.x += p.vx; p.y += p.vy;
      p.vx *= 0.5; p.vy *= 0.5;
    }
  }

  // Drawing.
  var view = document.createElementNS(NS, "g");
  svg.appendChild(view);
  var edgeLayer = document.createElementNS(NS, "g");
  var nodeLayer = document.createElementNS(NS, "g");
  view.appendChild(edgeLayer);
  view.appendChild(nodeLayer);
  edges.forEach(function (e) {
    var s = nodes[e.source], t = nodes[e.target];
    var line = document.createElementNS(NS, "line");
    line.setAttribute("class", "edge");
    line.setAttribute("x1", s.x); line.setAttribute("y1", s.y);
    line.setAttribute("x2", t.x); line.setAttribute("y2", t.y);
    var title = document.createElementNS(NS, "title");
    title.textContent = e.label;
    line.appendChild(title);
    edgeLayer.appendChild(line);
    if (n <= 60) {
      var label = document.createElementNS(NS, "text");
      label.setAttribute("class", "edge-label");
      label.setAttribute("x", (s.x + t.x) / 2);
      label.setAttribute("y", (s.y + t.y) / 2);
      label.setAttribute("text-anchor", "middle");
      label.textContent = e.label;
      edgeLayer.appendChild(label);
    }
  });
  var labels = [];
  nodes.forEach(function (node) {
    var link = document.createElementNS(NS, "a");
    link.setAttribute("href", node.href);
    link.setAttribute("class", "node" + (node.id === start ? " start" : ""));
    link.setAttribute("data-id", node.id);
    // The visible label, shortened below, must be part of the link's name (WCAG 2.5.3).
    var shown = node.name.length > 28 ? node.name.slice(0, 27) + "…" : node.name;
    link.setAttribute("aria-label", (shown !== node.name ? shown + " " : "") + node.type + ": " + node.name);
    var c = document.createElementNS(NS, "circle");
    c.setAttribute("cx", node.x); c.setAttribute("cy", node.y);
    c.setAttribute("r", node.id === start ? 11 : 7);
    c.setAttribute("fill", colour(node.type));
    var title = document.createElementNS(NS, "title");
    title.textContent = node.type + ": " + node.name;
    c.appendChild(title);
    link.appendChild(c);
    var text = document.createElementNS(NS, "text");
    text.setAttribute("x", node.x + 10);
    text.setAttribute("y", node.y + 4);
    text.setAttribute("direction", "ltr");
    var name = shown;
    text.textContent = name;
    link.appendChild(text);
    nodeLayer.appendChild(link);
    labels.push({ node: node, el: text, chars: name.length });
  });

  // Pan and zoom: one transform on the group. The view starts fitted to the drawing.
  var scale = 1, tx = 0, ty = 0;
  // Labels keep at least 9 px on screen however far the view is zoomed out, so that the
  // names of a 200-node drawing stay legible when fitted (CSSOM, which the CSP allows).
  function apply() {
    view.setAttribute("transform", "translate(" + tx + " " + ty + ") scale(" + scale + ")");
    var size = Math.max(11, 9 / scale);
    nodeLayer.style.setProperty("--label-size", size + "px");
    // Dots keep at least 4 px of radius on screen too.
    nodeLayer.style.setProperty("--node-r", Math.max(7, 4 / scale) + "px");
    declutter(size * scale);
  }
  // Labels that would overlap on screen are hidden, nearest to the start first (the server
  // sends nodes nearest first); a hidden label shows on hover and focus (style.css), and
  // zooming in brings labels back as room appears.
  function declutter(px) {
    var cell = 64, taken = {};
    function key(cx, cy) { return cx + "," + cy; }
    labels.forEach(function (l) {
      var x0 = tx + scale * (l.node.x + 10), y0 = ty + scale * l.node.y - px;
      var x1 = x0 + l.chars * px * 0.58, y1 = y0 + px * 1.3;
      var free = true, cx, cy, boxes;
      for (cx = Math.floor(x0 / cell); free && cx <= Math.floor(x1 / cell); cx++) {
        for (cy = Math.floor(y0 / cell); free && cy <= Math.floor(y1 / cell); cy++) {
          boxes = taken[key(cx, cy)] || [];
          for (var b = 0; b < boxes.length; b++) {
            var o = boxes[b];
            if (x0 < o[2] && o[0] < x1 && y0 < o[3] && o[1] < y1) { free = false; break; }
          }
        }
      }
      l.el.setAttribute("visibility", free ? "visible" : "hidden");
      if (!free) { return; }
      for (cx = Math.floor(x0 / cell); cx <= Math.floor(x1 / cell); cx++) {
        for (cy = Math.floor(y0 / cell); cy <= Math.floor(y1 / cell); cy++) {
          (taken[key(cx, cy)] = taken[key(cx, cy)] || []).push([x0, y0, x1, y1]);
        }
      }
    });
  }
  // Fitted to the bulk of the drawing: past 20 nodes, the 2% most outlying positions on
  // each side are left out, so that one node flung far away (a weakly linked one) does not
  // shrink 200 others to unreadable dots; it stays a drag away.
  function fit() {
    var w = svg.clientWidth || 800, h = svg.clientHeight || 500;
    var xs = nodes.map(function (p) { return p.x; }).sort(function (a, b) { return a - b; });
    var ys = nodes.map(function (p) { return p.y; }).sort(function (a, b) { return a - b; });
    var cut = n > 20 ? Math.floor(n * 0.02) : 0;
    var minX = xs[cut], maxX = xs[n - 1 - cut] + 120;
    var minY = ys[cut], maxY = ys[n - 1 - cut];
    if (!n || !isFinite(minX)) { minX = maxX = minY = maxY = 0; }
    var bw = Math.max(1, maxX - minX + 40), bh = Math.max(1, maxY - minY + 40);
    scale = Math.min(2, Math.min(w / bw, h / bh));
    tx = w / 2 - scale * (minX + maxX) / 2;
    ty = h / 2 - scale * (minY + maxY) / 2;
    apply();
  }
  function zoom(factor, cx, cy) {
    var next = Math.max(0.1, Math.min(8, scale * factor));
    factor = next / scale;
    tx = cx - (cx - tx) * factor;
    ty = cy - (cy - ty) * factor;
    scale = next;
    apply();
  }
  fit();
  window.addEventListener("resize", fit);

  var dragging = null;
  svg.addEventListener("pointerdown", function (ev) {
    if (ev.target.closest && ev.target.closest("a")) { return; }
    dragging = { x: ev.clientX, y: ev.clientY };
    svg.classList.add("dragging");
    svg.setPointerCapture(ev.pointerId);
  });
  svg.addEventListener("pointermove", function (ev) {
    if (!dragging) { return; }
    tx += ev.clientX - dragging.x;
    ty += ev.clientY - dragging.y;
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
    ev.preventDefault();
    var box = svg.getBoundingClientRect();
    zoom(ev.deltaY < 0 ? 1.15 : 1 / 1.15, ev.clientX - box.left, ev.clientY - box.top);
  }, { passive: false });
  svg.addEventListener("keydown", function (ev) {
    if (ev.target !== svg) { return; }
    var w = svg.clientWidth / 2, h = svg.clientHeight / 2, handled = true;
    switch (ev.key) {
      case "+": case "=": zoom(1.2, w, h); break;
      case "-": case "_": zoom(1 / 1.2, w, h); break;
      case "ArrowLeft": tx += 40; apply(); break;
      case "ArrowRight": tx -= 40; apply(); break;
      case "ArrowUp": ty += 40; apply(); break;
      case "ArrowDown": ty -= 40; apply(); break;
      case "0": fit(); break;
      default: handled = false;
    }
    if (handled) { ev.preventDefault(); }
  });
  // The legend: each type's chip gets its colour (CSSOM, which the CSP allows).
  document.querySelectorAll(".type-chip[data-type]").forEach(function (chip) {
    chip.style.setProperty("border-inline-start", "0.8rem solid " + colour(chip.getAttribute("data-type")));
  });
  svg.setAttribute("data-ready", String(n));
})();

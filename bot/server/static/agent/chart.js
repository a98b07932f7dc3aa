/*
 * A tiny chart drawer for the agent page's Metrics tab: line and bar charts as SVG, built
 * with DOM calls only (no library, nothing fetched, no inline style: the page's CSP
 * allows neither). Each chart is a <figure> whose SVG has a text summary for screen
 * readers, and a "Show the numbers" table beside it.
 *
 *   CsbotChart.line({title, labels, series: [{name, values}], format, max})
 *   CsbotChart.bar({title, labels, series: [{name, values}], format, max})
 *
 * `labels` are the x values (days, as text); each series has one value per label, or null
 * for a day without data; `format(v)` writes a value for people; `max` fixes the top of
 * the y axis (1 for rates), otherwise it is the largest value.
 */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var WIDTH = 360;
  var HEIGHT = 180;
  var PAD = { left: 48, right: 12, top: 12, bottom: 30 };
  // at least 3:1 against white, as graphics need; text uses the page's dark text colour
  var COLOURS = ["#3b2c85", "#b3541e", "#1d6b4f", "#0b57d0"];
  var TEXT = "#1b1b24";
  var GRID = "#8a8a96";
  var counter = 0;

  function el(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (text != null) node.textContent = text;
    return node;
  }

  function html(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = text;
    return node;
  }

  function plain(v) {
    return Math.abs(v) >= 100 ? String(Math.round(v)) : String(Math.round(v * 100) / 100);
  }

  function numbers(series) {
    var all = [];
    series.forEach(function (s) {
      s.values.forEach(function (v) { if (typeof v === "number" && isFinite(v)) all.push(v); });
    });
    return all;
  }

  function frame(opts, kind) {
    var format = opts.format || plain;
    var labels = opts.labels || [];
    var series = (opts.series || []).filter(function (s) { return s && s.values; });
    var id = "csbot-chart-" + (++counter);
    var figure = html("figure", "chart chart--" + kind);
    figure.dataset.chart = opts.key || opts.title;
    var caption = html("figcaption", null, opts.title);
    caption.id = id + "-title";
    figure.appendChild(caption);

    var values = numbers(series);
    if (!labels.length || !values.length) {
      figure.appendChild(html("p", "chart-empty", "No data for these days."));
      return { figure: figure, empty: true };
    }
    var top = opts.max != null ? Math.max(opts.max, Math.max.apply(null, values)) : Math.max.apply(null, values);
    if (!(top > 0)) top = 1;

    var svg = el("svg", {
      class: "chart-plot",
      viewBox: "0 0 " + WIDTH + " " + HEIGHT,
      role: "img",
      "aria-labelledby": caption.id + " " + id + "-desc",
      focusable: "false",
    });
    svg.appendChild(el("desc", { id: id + "-desc" }, summary(labels, series, format)));
    var plotW = WIDTH - PAD.left - PAD.right;
    var plotH = HEIGHT - PAD.top - PAD.bottom;
    var y = function (v) { return PAD.top + plotH - (v / top) * plotH; };

    [0, top / 2, top].forEach(function (v) {
      svg.appendChild(el("line", {
        x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v),
        stroke: GRID, "stroke-width": v === 0 ? 1 : 0.5, "stroke-dasharray": v === 0 ? "" : "3 3",
      }));
      svg.appendChild(el("text", {
        x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: TEXT,
      }, format(v)));
    });
    var shown = labels.length <= 3 ? labels.map(function (_, i) { return i; }) : [0, Math.floor((labels.length - 1) / 2), labels.length - 1];
    return {
      figure: figure, svg: svg, labels: labels, series: series, format: format, y: y,
      plotW: plotW, plotH: plotH, shownLabels: shown, id: id,
    };
  }

  function summary(labels, series, format) {
    return series.map(function (s) {
      var vals = s.values.filter(function (v) { return typeof v === "number"; });
      if (!vals.length) return s.name + ": no data";
      var last = null;
      for (var i = s.values.length - 1; i >= 0; i--) {
        if (typeof s.values[i] === "number") { last = i; break; }
      }
      return s.name + ": from " + format(Math.min.apply(null, vals)) + " to " + format(Math.max.apply(null, vals)) +
        ", " + format(s.values[last]) + " on " + labels[last];
    }).join("; ") + ".";
  }

  function xLabel(c, i, x) {
    var anchor = i === 0 ? "start" : i === c.labels.length - 1 ? "end" : "middle";
    c.svg.appendChild(el("text", {
      x: x, y: HEIGHT - 10, "text-anchor": anchor, "font-size": 11, fill: TEXT,
    }, c.labels[i]));
  }

  function finish(c) {
    c.figure.appendChild(c.svg);
    if (c.series.length > 1) {
      var legend = html("ul", "chart-legend");
      c.series.forEach(function (s, n) {
        var item = html("li");
        var swatch = el("svg", { width: 12, height: 12, "aria-hidden": "true", focusable: "false" });
        swatch.appendChild(el("rect", { width: 12, height: 12, fill: COLOURS[n % COLOURS.length] }));
        item.appendChild(swatch);
        item.appendChild(document.createTextNode(" " + s.name));
        legend.appendChild(item);
      });
      c.figure.appendChild(legend);
    }
    var details = html("details");
    details.appendChild(html("summary", null, "Show the numbers"));
    var table = html("table", "table");
    var head = html("tr");
    head.appendChild(th("Day"));
    c.series.forEach(function (s) { head.appendChild(th(s.name)); });
    var thead = html("thead");
    thead.appendChild(head);
    table.appendChild(thead);
    var body = html("tbody");
    c.labels.forEach(function (label, i) {
      var row = html("tr");
      row.appendChild(html("td", null, label));
      c.series.forEach(function (s) {
        var v = s.values[i];
        row.appendChild(html("td", "num", typeof v === "number" ? c.format(v) : "–"));
      });
      body.appendChild(row);
    });
    table.appendChild(body);
    details.appendChild(table);
    c.figure.appendChild(details);
    return c.figure;
  }

  function th(text) {
    var cell = html("th", null, text);
    cell.setAttribute("scope", "col");
    return cell;
  }

  function line(opts) {
    var c = frame(opts, "line");
    if (c.empty) return c.figure;
    var n = c.labels.length;
    var x = function (i) { return PAD.left + (n === 1 ? c.plotW / 2 : (i / (n - 1)) * c.plotW); };
    c.shownLabels.forEach(function (i) { xLabel(c, i, x(i)); });
    c.series.forEach(function (s, k) {
      var colour = COLOURS[k % COLOURS.length];
      var run = [];
      var flush = function () {
        if (run.length > 1) {
          c.svg.appendChild(el("polyline", {
            points: run.join(" "), fill: "none", stroke: colour, "stroke-width": 2, "stroke-linejoin": "round",
          }));
        }
        run = [];
      };
      s.values.forEach(function (v, i) {
        if (typeof v !== "number") { flush(); return; }
        run.push(x(i).toFixed(1) + "," + c.y(v).toFixed(1));
        var dot = el("circle", { cx: x(i).toFixed(1), cy: c.y(v).toFixed(1), r: 2.5, fill: colour });
        dot.appendChild(el("title", {}, s.name + ", " + c.labels[i] + ": " + c.format(v)));
        c.svg.appendChild(dot);
      });
      flush();
    });
    return finish(c);
  }

  function bar(opts) {
    var c = frame(opts, "bar");
    if (c.empty) return c.figure;
    var n = c.labels.length;
    var slot = c.plotW / n;
    var groups = c.series.length;
    var width = Math.max(1, (slot * 0.8) / groups);
    c.shownLabels.forEach(function (i) { xLabel(c, i, PAD.left + slot * (i + 0.5)); });
    c.series.forEach(function (s, k) {
      var colour = COLOURS[k % COLOURS.length];
      s.values.forEach(function (v, i) {
        if (typeof v !== "number") return;
        var left = PAD.left + slot * i + slot * 0.1 + width * k;
        var rect = el("rect", {
          x: left.toFixed(1), y: c.y(v).toFixed(1), width: width.toFixed(1),
          height: Math.max(0, c.y(0) - c.y(v)).toFixed(1), fill: colour,
        });
        rect.appendChild(el("title", {}, s.name + ", " + c.labels[i] + ": " + c.format(v)));
        c.svg.appendChild(rect);
      });
    });
    return finish(c);
  }

  window.CsbotChart = { line: line, bar: bar };
})();

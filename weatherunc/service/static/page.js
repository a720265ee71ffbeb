// The map page of `weatherunc serve`: pick a store, a time and a layer; click a pixel to see its
// predictive distribution (EDR position query in the store's own CRS). Plain JavaScript, no library.
"use strict";

const elements = {
  store: document.getElementById("store"),
  time: document.getElementById("time"),
  layer: document.getElementById("layer"),
  threshold: document.getElementById("threshold"),
  thresholdLabel: document.getElementById("threshold-label"),
  map: document.getElementById("map"),
  marker: document.getElementById("marker"),
  mapStatus: document.getElementById("map-status"),
  pixelEmpty: document.getElementById("pixel-empty"),
  pixelDetails: document.getElementById("pixel-details"),
  pixelError: document.getElementById("pixel-error"),
  pixelWhere: document.getElementById("pixel-where"),
  pixelStatus: document.getElementById("pixel-status"),
  pixelSummary: document.getElementById("pixel-summary"),
  pixelQuantiles: document.getElementById("pixel-quantiles"),
  pixelExceedance: document.getElementById("pixel-exceedance"),
  pixelBins: document.getElementById("pixel-bins"),
};
const state = { stores: {}, geometry: null, pixel: null, names: {} };

async function getJson(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) {
    throw new Error(body.detail || response.statusText);
  }
  return body;
}

function option(select, value, label) {
  const item = document.createElement("option");
  item.value = value;
  item.textContent = label;
  select.appendChild(item);
}

function formatNumber(value, digits = 3) {
  return value === null || value === undefined ? "–" : Number(value).toPrecision(digits);
}

function mapBase() {
  return `datasets/${encodeURIComponent(elements.store.value)}/map/${elements.layer.value}`;
}

function mapParameters() {
  const parameters = new URLSearchParams({ time: elements.time.value });
  if (elements.layer.value === "exceedance") {
    parameters.set("threshold", elements.threshold.value);
  }
  return parameters.toString();
}

async function showMap() {
  elements.thresholdLabel.hidden = elements.layer.value !== "exceedance";
  const base = mapBase();
  const parameters = mapParameters();
  elements.mapStatus.textContent = "drawing the map…";
  elements.map.dataset.loaded = "";
  try {
    state.geometry = await getJson(`${base}.json?${parameters}`);
    await new Promise((resolve, reject) => {
      elements.map.onload = resolve;
      elements.map.onerror = () => reject(new Error("the map image did not load"));
      elements.map.src = `${base}.png?${parameters}`;
    });
    elements.map.dataset.loaded = `${elements.store.value}|${elements.time.value}|${elements.layer.value}`;
    elements.mapStatus.textContent = `${elements.layer.options[elements.layer.selectedIndex].text}, ` +
      `${elements.time.value}`;
    if (state.pixel) {
      await showPixel(state.pixel.x, state.pixel.y);
    }
  } catch (error) {
    elements.mapStatus.textContent = `error: ${error.message}`;
  }
}

function fillTimes() {
  const metadata = state.stores[elements.store.value];
  elements.time.replaceChildren();
  metadata.times.forEach((time) => option(elements.time, time, time.replace("T", " ")));
  elements.threshold.replaceChildren();
  (metadata.axes.threshold || []).forEach((value) => option(elements.threshold, value, value));
  const one = (metadata.axes.threshold || []).indexOf(1);
  if (one >= 0) {
    elements.threshold.selectedIndex = one;
  }
}

function row(table, cells, header = false) {
  const line = document.createElement("tr");
  cells.forEach((cell) => {
    const item = document.createElement(header ? "th" : "td");
    if (cell instanceof Node) {
      item.className = "bar";
      item.appendChild(cell);
    } else {
      item.textContent = cell;
    }
    line.appendChild(item);
  });
  table.appendChild(line);
}

function bar(probability) {
  const span = document.createElement("span");
  span.style.width = `${Math.round(100 * (probability || 0))}%`;
  return span;
}

function statusOf(coverage) {
  const names = state.names;
  const flags = coverage.ranges[names.flags];
  const mean = coverage.ranges[names.mean];
  const predicted = mean && mean.values[0] !== null;
  if (!flags) {
    return predicted ? "predicted" : "not predicted";
  }
  const encoding = coverage.parameters[names.flags].categoryEncoding || {};
  const meaning = Object.keys(encoding).find((key) => encoding[key] === flags.values[0]) || String(flags.values[0]);
  if (meaning === "observed") {
    return "observed";
  }
  if (meaning === "filled") {
    return "filled by the model";
  }
  return predicted ? `${meaning}: filled by the model` : `${meaning}: not predicted`;
}

async function showPixel(x, y) {
  state.pixel = { x, y };
  const parameters = new URLSearchParams({
    coords: `POINT(${x} ${y})`,
    crs: "native",
    datetime: elements.time.value,
  });
  elements.pixelError.hidden = true;
  try {
    const coverage = await getJson(
      `datasets/${encodeURIComponent(elements.store.value)}/edr/position?${parameters.toString()}`);
    renderPixel(coverage);
  } catch (error) {
    elements.pixelDetails.hidden = true;
    elements.pixelError.hidden = false;
    elements.pixelError.textContent = error.message;
  }
}

function renderPixel(coverage) {
  const pixel = coverage["weatherunc:pixel"];
  const ranges = coverage.ranges;
  const axes = coverage.domain.axes;
  elements.pixelEmpty.hidden = true;
  elements.pixelDetails.hidden = false;
  elements.pixelWhere.textContent = `row ${pixel.row}, column ${pixel.column} ` +
    `(x ${formatNumber(pixel.x, 7)}, y ${formatNumber(pixel.y, 7)}), ${axes.t.values[0]}`;
  elements.pixelStatus.textContent = statusOf(coverage);
  elements.pixelSummary.replaceChildren();
  const names = state.names;
  [["observed", names.observed], ["predictive mean", names.mean],
    ["predictive std", names.std]].forEach(([label, name]) => {
    if (ranges[name]) {
      row(elements.pixelSummary, [label, `${formatNumber(ranges[name].values[0])} mm/h`]);
    }
  });
  elements.pixelQuantiles.replaceChildren();
  const quantiles = ranges[names.quantile];
  if (quantiles) {
    row(elements.pixelQuantiles, ["quantile", "rate"], true);
    axes.quantile.values.forEach((level, index) => row(elements.pixelQuantiles,
      [level, formatNumber(quantiles.values[index])]));
  }
  elements.pixelExceedance.replaceChildren();
  const exceedance = ranges[names.exceedance];
  if (exceedance) {
    row(elements.pixelExceedance, ["threshold [mm/h]", "probability", ""], true);
    axes.threshold.values.forEach((threshold, index) => {
      const probability = exceedance.values[index];
      row(elements.pixelExceedance, [threshold, formatNumber(probability), bar(probability)]);
    });
  }
  elements.pixelBins.replaceChildren();
  const bins = ranges[names.bins];
  if (bins) {
    row(elements.pixelBins, ["bin [mm/h]", "probability", ""], true);
    pixel.bin_lower.forEach((lower, index) => {
      const upper = pixel.bin_upper[index];
      const probability = bins.values[index];
      row(elements.pixelBins, [upper === null ? `≥ ${lower}` : `${lower} – ${upper}`,
        formatNumber(probability), bar(probability)]);
    });
  }
}

function onMapClick(event) {
  const geometry = state.geometry;
  if (!geometry) {
    return;
  }
  const scale = elements.map.naturalWidth / elements.map.clientWidth;
  const column = event.offsetX * scale;
  const line = event.offsetY * scale;
  const [left, top, right, bottom] = geometry.axes_box;
  const [x0, x1, y0, y1] = geometry.extent;
  if (column < left || column > right || line < top || line > bottom) {
    return;
  }
  const x = x0 + ((column - left) / (right - left)) * (x1 - x0);
  const y = y1 - ((line - top) / (bottom - top)) * (y1 - y0);
  elements.marker.hidden = false;
  elements.marker.style.left = `${event.offsetX}px`;
  elements.marker.style.top = `${event.offsetY}px`;
  showPixel(x, y);
}

async function start() {
  try {
    state.names = await getJson("names");
    state.stores = await getJson("stores");
  } catch (error) {
    elements.mapStatus.textContent = `error: ${error.message}`;
    return;
  }
  Object.keys(state.stores).forEach((name) => option(elements.store, name, name));
  fillTimes();
  elements.store.addEventListener("change", () => { state.pixel = null; fillTimes(); showMap(); });
  [elements.time, elements.layer, elements.threshold].forEach((select) => select.addEventListener("change", showMap));
  elements.map.addEventListener("click", onMapClick);
  await showMap();
}

start();

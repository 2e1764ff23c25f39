/* The map's binary payload (analysis/explorer/payload.py payload_encode), gzip on the wire and
   unpacked here: typed arrays for coordinates, datasets, labels, confidences and clusters, and the
   texts as one UTF-8 block with offsets, decoded only when a text is shown or searched. */

const ARRAY_TYPES = {
  "<f4": Float32Array,
  "<u4": Uint32Array,
  "<u2": Uint16Array,
  "<i2": Int16Array,
  "|u1": Uint8Array,
};
export const NO_LABEL = 255;
const decoder = new TextDecoder("utf-8");

export function decode(buffer) {
  const view = new DataView(buffer);
  const magic = String.fromCharCode(view.getUint8(0), view.getUint8(1), view.getUint8(2), view.getUint8(3));
  if (magic !== "MWEX" || view.getUint32(4, true) !== 1) {
    throw new Error("this map's data is in a format this page does not read; reload the page");
  }
  const headerLength = view.getUint32(8, true);
  const header = JSON.parse(decoder.decode(new Uint8Array(buffer, 12, headerLength)));
  const start = 12 + headerLength;
  const arrays = {};
  header.arrays.forEach(function (entry) {
    const Type = ARRAY_TYPES[entry.dtype];
    if (!Type) throw new Error("unknown array type " + entry.dtype);
    arrays[entry.name] = new Type(buffer, start + entry.offset, entry.length);
  });
  const n = header.count;
  let xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity;
  for (let i = 0; i < n; i++) {
    const x = arrays.x[i], y = arrays.y[i];
    if (x < xmin) xmin = x;
    if (x > xmax) xmax = x;
    if (y < ymin) ymin = y;
    if (y > ymax) ymax = y;
  }
  if (!n) {
    xmin = ymin = -1;
    xmax = ymax = 1;
  }
  const padX = (xmax - xmin) * 0.03 || 1, padY = (ymax - ymin) * 0.03 || 1;
  return {
    header: header,
    n: n,
    x: arrays.x,
    y: arrays.y,
    dataset: arrays.dataset,
    label: arrays.label,
    confidence: arrays.confidence,
    cluster: arrays.cluster,
    offsets: arrays.text_offsets,
    text: arrays.text,
    bounds: [xmin - padX, xmax + padX, ymin - padY, ymax + padY],
    textCache: null,
    lowerCache: null,
  };
}

export function textOf(data, i) {
  if (data.textCache && data.textCache[i] !== undefined) return data.textCache[i];
  return decoder.decode(data.text.subarray(data.offsets[i], data.offsets[i + 1]));
}

/* Every text in lower case, decoded once on the first text search. */
export function lowerTexts(data) {
  if (!data.lowerCache) {
    data.textCache = new Array(data.n);
    data.lowerCache = new Array(data.n);
    for (let i = 0; i < data.n; i++) {
      data.textCache[i] = decoder.decode(data.text.subarray(data.offsets[i], data.offsets[i + 1]));
      data.lowerCache[i] = data.textCache[i].toLowerCase();
    }
  }
  return data.lowerCache;
}

export function labelName(data, index) {
  return index === NO_LABEL ? "(none)" : data.header.labels[index];
}

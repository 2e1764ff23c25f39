"""The binary payload the explorer page downloads (decoded in the browser by
static/js/explorer/data.js): a map's points, coordinates, labels and texts as typed arrays."""

from __future__ import annotations

import gzip
import json
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from analysis.explorer.errors import ExplorerError
from analysis.explorer.points import Point
from analysis.models import ExplorerCluster
from generation.models import Dataset

PAYLOAD_MAGIC = b"MWEX"
PAYLOAD_VERSION = 1
# Characters of each text in the page payload; the point's panel fetches the whole text.
PAYLOAD_TEXT_CHARS = 400
NO_LABEL = 255


def payload_encode(
    *,
    build_id: int,
    points: Sequence[Point],
    coords: np.ndarray,
    cluster_labels: np.ndarray,
    datasets: Sequence[Dataset],
    clusters: Sequence[dict[str, Any]],
) -> bytes:
    """The page's download, gzip-compressed: "MWEX", a version and a JSON header (uint32 each,
    little-endian), the header, then typed arrays at 8-byte aligned offsets the header names.
    Texts travel as one UTF-8 block with offsets, not as per-point JSON objects; untrusted strings
    (texts, labels, keywords, summaries) are data here and the page sets them as text."""
    count = len(points)
    if len(datasets) > np.iinfo("<u2").max:
        raise ExplorerError(f"{len(datasets)} datasets; the payload holds at most {np.iinfo('<u2').max}")
    dataset_index = {dataset.pk: i for i, dataset in enumerate(datasets)}
    labels = sorted({p.label for p in points if p.label})
    if len(labels) >= NO_LABEL:
        raise ExplorerError(f"{len(labels)} distinct labels; the payload holds at most {NO_LABEL - 1}")
    label_index = {label: i for i, label in enumerate(labels)}
    encoded = [p.text[:PAYLOAD_TEXT_CHARS].encode("utf-8") for p in points]
    offsets = np.zeros(count + 1, dtype="<u4")
    np.cumsum([len(t) for t in encoded], out=offsets[1:])
    arrays: list[tuple[str, np.ndarray]] = [
        ("x", np.ascontiguousarray(coords[:, 0], dtype="<f4")),
        ("y", np.ascontiguousarray(coords[:, 1], dtype="<f4")),
        ("dataset", np.array([dataset_index[p.dataset_id] for p in points], dtype="<u2")),
        ("label", np.array([label_index.get(p.label, NO_LABEL) for p in points], dtype="u1")),
        (
            "confidence",
            np.array([np.nan if p.confidence is None else p.confidence for p in points], dtype="<f4"),
        ),
        ("cluster", cluster_labels.astype("<i2")),
        ("text_offsets", offsets),
        ("text", np.frombuffer(b"".join(encoded), dtype="u1")),
    ]
    layout = []
    position = 0
    for name, array in arrays:
        layout.append({"name": name, "dtype": array.dtype.str, "offset": position, "length": int(array.size)})
        position += -(-array.nbytes // 8) * 8
    header = {
        "version": PAYLOAD_VERSION,
        "build": build_id,
        "count": count,
        "datasets": [{"slug": d.slug, "behavior": d.behavior} for d in datasets],
        "labels": labels,
        "clusters": list(clusters),
        "text_chars": PAYLOAD_TEXT_CHARS,
        "arrays": layout,
    }
    header_bytes = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-(len(header_bytes) + 12) % 8)
    body = bytearray(PAYLOAD_MAGIC + struct.pack("<II", PAYLOAD_VERSION, len(header_bytes)) + header_bytes)
    for (_, array), entry in zip(arrays, layout, strict=True):
        assert len(body) - (12 + len(header_bytes)) == entry["offset"]
        body += array.tobytes()
        body += b"\0" * (-len(body) % 8)
    # mtime=0: the same map always compresses to the same bytes (and the same ETag).
    return gzip.compress(bytes(body), compresslevel=6, mtime=0)


def payload_cluster(cluster: ExplorerCluster) -> dict[str, Any]:
    """A cluster as the payload's header carries it (the page labels the map with these)."""
    return {
        "number": cluster.number,
        "size": cluster.size,
        "keywords": cluster.keywords,
        "summary": cluster.summary,
        "medoid": cluster.medoid_index,
        "x": cluster.x,
        "y": cluster.y,
    }


def payload_decode(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The inverse of payload_encode (what static/js/explorer/data.js does in the browser); for tests and tools."""
    raw = gzip.decompress(data)
    if raw[:4] != PAYLOAD_MAGIC:
        raise ValueError("not an explorer payload")
    version, header_length = struct.unpack_from("<II", raw, 4)
    if version != PAYLOAD_VERSION:
        raise ValueError(f"payload version {version}; this code reads {PAYLOAD_VERSION}")
    header = json.loads(raw[12 : 12 + header_length])
    start = 12 + header_length
    arrays = {}
    for entry in header["arrays"]:
        dtype = np.dtype(entry["dtype"])
        arrays[entry["name"]] = np.frombuffer(
            raw, dtype=dtype, count=entry["length"], offset=start + entry["offset"]
        )
    return header, arrays


def payload_texts(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> list[str]:
    blob = arrays["text"].tobytes()
    offsets = arrays["text_offsets"]
    return [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(header["count"])]
